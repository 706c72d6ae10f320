"""Text to model inputs without torch: shared by the students (training) and the light runtime.

Training, export and serving must turn a text into exactly the same numbers, so the code that
does it lives once, here, where importing it costs neither torch nor transformers: the
students import it for training, and `Predictor` imports it to serve an exported model.

Three schemes cover every student kind:
- "hash" (pQRNN): each token hashed to a fixed ternary vector, no embedding table. A token's
  vector comes from a keyed BLAKE2b hash expanded with splitmix64 into 2F bits; bit pairs give
  +1, -1 or 0 (probability 1/4, 1/4, 1/2), so two different tokens get near-orthogonal vectors
  without any stored parameters;
- "vocab" (bilstm, cnn, bag): word ids from a vocabulary learned on the transfer set;
- "wordpiece" (transformer): a `tokenizers` tokenizer saved as JSON.
"""

from __future__ import annotations

import hashlib
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

TOKEN_RE = re.compile(r"\w+|[^\w\s]", re.UNICODE)
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)

PAD, UNK = "<pad>", "<unk>"
PAD_ID, UNK_ID = 0, 1


def tokenize(text: str, lowercase: bool = True) -> list[str]:
    """Words and single punctuation marks; punctuation ('!', '?') carries sentiment."""
    return TOKEN_RE.findall(text.lower() if lowercase else text)


# -- "hash": the pQRNN projection -----------------------------------------------------------
def _splitmix64(x: np.ndarray) -> np.ndarray:
    with np.errstate(over="ignore"):
        z = x + _GOLDEN
        z = (z ^ (z >> np.uint64(30))) * _M1
        z = (z ^ (z >> np.uint64(27))) * _M2
        return z ^ (z >> np.uint64(31))


class HashProjection:
    """Maps tokens to ternary vectors of `features` dims; a bounded memo makes repeats cheap."""

    def __init__(self, features: int = 256, seed: int = 0, memo_size: int = 200_000) -> None:
        if features % 32:
            raise ValueError(f"features must be a multiple of 32, got {features}")
        self.features = features
        self.key = seed.to_bytes(8, "little")
        self.memo_size = memo_size
        self._memo: dict[str, np.ndarray] = {}

    def _compute(self, tokens: list[str]) -> np.ndarray:
        base = np.array(
            [
                int.from_bytes(
                    hashlib.blake2b(t.encode(), digest_size=8, key=self.key).digest(), "little"
                )
                for t in tokens
            ],
            dtype=np.uint64,
        )
        words = self.features // 32  # 2F bits in 64-bit words
        with np.errstate(over="ignore"):
            lanes = np.arange(1, words + 1, dtype=np.uint64) * _GOLDEN
        mixed = _splitmix64(base[:, None] ^ lanes[None, :])
        bits = np.unpackbits(mixed.view(np.uint8), axis=1, bitorder="little")
        pos = bits[:, : self.features].astype(np.int8)
        neg = bits[:, self.features : 2 * self.features].astype(np.int8)
        return pos - neg

    def compute(self, tokens: list[str]) -> np.ndarray:
        """[len(tokens), features] int8, bypassing the memo (for callers that cache further
        down the model, like the fused pQRNN's token table)."""
        return self._compute(tokens)

    def vectors(self, tokens: list[str]) -> np.ndarray:
        """[len(tokens), features] int8 in {-1, 0, 1}."""
        new = [t for t in dict.fromkeys(tokens) if t not in self._memo]
        if new:
            if len(self._memo) + len(new) > self.memo_size:
                # a full memo starts over; every token of this call is then new, not only the
                # unseen ones (found by a property test: reused tokens raised KeyError)
                self._memo.clear()
                new = list(dict.fromkeys(tokens))
            for t, v in zip(new, self._compute(new)):
                self._memo[t] = v
        if not tokens:
            return np.zeros((0, self.features), dtype=np.int8)
        return np.stack([self._memo[t] for t in tokens])

    def batch(
        self, texts: list[str], max_tokens: int = 64, lowercase: bool = True
    ) -> tuple[np.ndarray, np.ndarray]:
        """Right-padded projections [B, L, F] float32 and mask [B, L] (an empty text keeps one
        all-zero position so pooling is defined)."""
        toks = [tokenize(t, lowercase)[:max_tokens] for t in texts]
        length = max(1, max((len(t) for t in toks), default=1))
        proj = np.zeros((len(texts), length, self.features), dtype=np.float32)
        mask = np.zeros((len(texts), length), dtype=np.float32)
        for i, t in enumerate(toks):
            if t:
                proj[i, : len(t)] = self.vectors(t)
                mask[i, : len(t)] = 1.0
            else:
                mask[i, 0] = 1.0
        return proj, mask


# -- "vocab": word ids -----------------------------------------------------------------------
class Vocab:
    """Words by id: `<pad>` = 0, `<unk>` = 1, then the kept words, most frequent first."""

    def __init__(self, words: Iterable[str] = ()) -> None:
        self.itos: list[str] = [PAD, UNK]
        for w in words:
            if w not in (PAD, UNK):
                self.itos.append(w)
        self.stoi: dict[str, int] = {w: i for i, w in enumerate(self.itos)}

    @classmethod
    def build(
        cls, texts: Iterable[str], max_size: int, min_count: int = 1, lowercase: bool = True
    ) -> Vocab:
        """Keep at most `max_size` entries (specials included) seen at least `min_count` times;
        ties are broken alphabetically so the same texts always give the same ids."""
        counts = Counter(tok for text in texts for tok in tokenize(text, lowercase))
        kept = sorted(
            (w for w, c in counts.items() if c >= min_count), key=lambda w: (-counts[w], w)
        )
        return cls(kept[: max(0, max_size - 2)])

    def __len__(self) -> int:
        return len(self.itos)

    @property
    def words(self) -> list[str]:
        return list(self.itos)

    def encode(self, tokens: Sequence[str]) -> list[int]:
        return [self.stoi.get(t, UNK_ID) for t in tokens]

    def state(self) -> dict[str, Any]:
        """JSON-able; the specials are implied."""
        return {"words": self.itos[2:]}

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> Vocab:
        return cls(state.get("words", []))


def encode_ids(
    texts: Sequence[str], vocab: Vocab, max_tokens: int, lowercase: bool = True
) -> tuple[np.ndarray, np.ndarray]:
    """Right-padded ids [B, L] (int64) and mask [B, L] (float32). An empty text keeps one
    masked-in `<unk>` so pooling over it is defined."""
    rows = [vocab.encode(tokenize(t, lowercase)[:max_tokens]) or [UNK_ID] for t in texts]
    length = max(1, max((len(r) for r in rows), default=1))
    ids = np.full((len(rows), length), PAD_ID, dtype=np.int64)
    mask = np.zeros((len(rows), length), dtype=np.float32)
    for i, r in enumerate(rows):
        ids[i, : len(r)] = r
        mask[i, : len(r)] = 1.0
    return ids, mask


# -- the runtime's view: one object per scheme, built from preprocess.json --------------------
class Preprocessor:
    """Texts -> the exported graph's named inputs, from the "preprocessing" entry of
    preprocess.json (`root` is the export directory, for files such as tokenizer.json)."""

    def __init__(self, spec: dict[str, Any], input_names: list[str], root: str | Path) -> None:
        self.spec = spec
        self.input_names = list(input_names)
        self.scheme = spec["scheme"]
        self.max_tokens = int(spec["max_tokens"])
        self.lowercase = bool(spec.get("lowercase", True))
        if self.scheme == "hash":
            self.projection = HashProjection(int(spec["features"]), int(spec["seed"]))
        elif self.scheme == "vocab":
            self.vocab = Vocab(spec["words"])
        elif self.scheme == "wordpiece":
            from tokenizers import Tokenizer

            self.tokenizer = Tokenizer.from_file(str(Path(root) / spec["tokenizer"]))
        else:
            raise ValueError(f"unknown preprocessing scheme {self.scheme!r}")
        if len(self.input_names) != 2:
            raise ValueError(f"expected two graph inputs, got {self.input_names}")

    def __call__(self, texts: list[str]) -> dict[str, np.ndarray]:
        if self.scheme == "hash":
            arrays = self.projection.batch(texts, self.max_tokens, self.lowercase)
        elif self.scheme == "vocab":
            arrays = encode_ids(texts, self.vocab, self.max_tokens, self.lowercase)
        else:
            encs = self.tokenizer.encode_batch(list(texts))
            arrays = (
                np.array([e.ids for e in encs], dtype=np.int64),
                np.array([e.attention_mask for e in encs], dtype=np.int64),
            )
        return dict(zip(self.input_names, arrays))
