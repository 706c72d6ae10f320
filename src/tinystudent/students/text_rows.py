"""The pQRNN's features with each text's token rows kept between calls.

Training featurizes the same transfer texts every epoch; `HashProjection.batch` tokenises
each text again and stacks its tokens' vectors one by one, about 3 ms of a 64-text batch
(tens of percent of a fused training step). Here a text is tokenised once into ids of a table
of distinct token vectors, and a batch is one gather from that table into the padded array:
the same arrays as `HashProjection.batch`, bit for bit (tested).
"""

from __future__ import annotations

import numpy as np

from tinystudent.inference.preprocess import HashProjection, tokenize


class TextRows:
    """Bounded memo text -> token ids, and the table of those tokens' ternary vectors, for
    one tokenisation (`max_tokens`, `lowercase`). Either one full (`max_texts` texts or as
    many distinct tokens) starts both over; a batch larger than that bypasses the memo."""

    def __init__(
        self, projection: HashProjection, max_texts: int, max_tokens: int, lowercase: bool
    ) -> None:
        self.projection = projection
        self.max_texts, self.max_tokens, self.lowercase = max_texts, max_tokens, lowercase
        self.clear()

    def clear(self) -> None:
        self._texts: dict[str, np.ndarray] = {}
        self._tokens: dict[str, int] = {}
        self._table = np.zeros((0, self.projection.features), np.int8)
        self._used = 0

    def _ids(self, texts: list[str]) -> list[np.ndarray] | None:
        """Each text's token ids (table rows), tokenising and hashing only what is new;
        None when the batch alone overflows the memo."""
        new = [t for t in dict.fromkeys(texts) if t not in self._texts]
        toks = {t: tokenize(t, self.lowercase)[: self.max_tokens] for t in new}
        fresh = [w for w in dict.fromkeys(w for ws in toks.values() for w in ws)]
        fresh = [w for w in fresh if w not in self._tokens]
        full = max(len(self._texts) + len(new), len(self._tokens) + len(fresh))
        if full > self.max_texts:
            if self._texts:
                self.clear()
                return self._ids(texts)
            return None
        self._add(fresh)
        for t, ws in toks.items():
            self._texts[t] = np.fromiter((self._tokens[w] for w in ws), np.int64, len(ws))
        return [self._texts[t] for t in texts]

    def _add(self, tokens: list[str]) -> None:
        if not tokens:
            return
        need = self._used + len(tokens)
        if need > len(self._table):  # grow by doubling: amortised O(1) per token
            grown = np.zeros((max(need, 2 * len(self._table)), self._table.shape[1]), np.int8)
            grown[: self._used] = self._table[: self._used]
            self._table = grown
        self._table[self._used : need] = self.projection.compute(tokens)
        for i, w in enumerate(tokens):
            self._tokens[w] = self._used + i
        self._used = need

    def packed(self, texts: list[str]) -> dict[str, np.ndarray] | None:
        """The batch as the fused kernel reads it, without the padded [B, L, F] array:
        `tokens` [U, F] float32, the batch's distinct token vectors (an empty text's one
        position is an all-zero row); `token_rows` [N], each real position's row of
        `tokens` (texts one after another); `starts` [B + 1], each text's first position;
        `positions` [N], each position's flat index in the padded [B, L] layout; `mask`
        [B, L], as `batch` gives it. `tokens[token_rows]` scattered to `positions` is
        `batch`'s projection, bit for bit (tested). None for an empty batch (a DDP rank's
        share can be) and when the batch overflows the memo: `batch` serves those."""
        ids = self._ids(texts) if texts else None
        if ids is None:
            return None
        lengths = np.array([max(1, len(i)) for i in ids], np.int64)
        length = int(lengths.max(initial=1))
        flat = np.concatenate([i if len(i) else np.array([-1], np.int64) for i in ids])
        uniq, token_rows = np.unique(flat, return_inverse=True)
        tokens = self._table[np.maximum(uniq, 0)].astype(np.float32)
        tokens[uniq < 0] = 0.0
        starts = np.zeros(len(texts) + 1, np.int64)
        np.cumsum(lengths, out=starts[1:])
        pos = np.arange(int(starts[-1])) - np.repeat(starts[:-1], lengths)
        positions = np.repeat(np.arange(len(texts)) * length, lengths) + pos
        mask = np.zeros((len(texts), length), np.float32)
        mask.reshape(-1)[positions] = 1.0
        return {
            "tokens": tokens,
            "token_rows": token_rows.astype(np.int64).reshape(-1),
            "starts": starts,
            "positions": positions,
            "mask": mask,
        }

    def batch(self, texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
        """What `HashProjection.batch(texts, max_tokens, lowercase)` returns."""
        ids = self._ids(texts)
        if ids is None:
            return self.projection.batch(texts, self.max_tokens, self.lowercase)
        lengths = np.array([len(i) for i in ids], np.int64)
        length = max(1, int(lengths.max(initial=0)))
        proj = np.zeros((len(texts), length, self._table.shape[1]), np.float32)
        mask = np.zeros((len(texts), length), np.float32)
        mask[lengths == 0, 0] = 1.0  # an empty text keeps one all-zero position
        if lengths.sum():
            firsts = np.cumsum(lengths) - lengths
            pos = np.arange(int(lengths.sum())) - np.repeat(firsts, lengths)
            flat = np.repeat(np.arange(len(texts)) * length, lengths) + pos
            proj.reshape(-1, proj.shape[2])[flat] = self._table[np.concatenate(ids)]
            mask.reshape(-1)[flat] = 1.0
        return proj, mask
