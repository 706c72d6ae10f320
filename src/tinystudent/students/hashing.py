"""The pQRNN token projection: each token hashed to a fixed ternary vector, no embedding table.

Numpy only (no torch), so the light inference runtime and the exporter use this exact code:
training, export and serving cannot drift apart. A token's vector comes from a keyed BLAKE2b
hash expanded with splitmix64 into 2F bits; bit pairs give +1, -1 or 0 (probability 1/4, 1/4,
1/2), so two different tokens get near-orthogonal vectors without any stored parameters.
"""

from __future__ import annotations

import hashlib
import re

import numpy as np

TOKEN_RE = re.compile(r"\w+|[^\w\s]", re.UNICODE)
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)


def tokenize(text: str, lowercase: bool = True) -> list[str]:
    """Words and single punctuation marks; punctuation ('!', '?') carries sentiment."""
    return TOKEN_RE.findall(text.lower() if lowercase else text)


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

    def vectors(self, tokens: list[str]) -> np.ndarray:
        """[len(tokens), features] int8 in {-1, 0, 1}."""
        new = [t for t in dict.fromkeys(tokens) if t not in self._memo]
        if new:
            if len(self._memo) + len(new) > self.memo_size:
                self._memo.clear()
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
