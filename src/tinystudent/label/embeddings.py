"""A persistent content-keyed cache of sentence embeddings, shared by every head fit on them.

A frozen encoder's embedding of a text never changes, so the expensive part of a frozen
teacher (the encoder pass) is done once per (encoder fingerprint, text) and every later
head, seed or k reuses it. The store is the soft-label cache's (`label/cache.py`): atomic,
checksummed safetensors shards under `<root>/<encoder fingerprint>/`, a damaged shard
recomputed, an interrupted run resumed from its last finished shard.
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

import numpy as np

from tinystudent.label.cache import CacheStats, ShardCache, cached_rows


class Encoder(Protocol):
    """What the cache needs from an encoder: a content fingerprint, a width and a batch call."""

    @property
    def fingerprint(self) -> str: ...

    @property
    def dim(self) -> int: ...

    def encode(self, texts: list[str]) -> np.ndarray: ...


class EmbeddingCache(ShardCache):
    """Embeddings (float32 [n, dim]) keyed by (encoder fingerprint, SHA-256 of the text)."""

    tensor = "vectors"
    what = "embedding cache"


def embed_texts(
    encoder: Encoder,
    texts: list[str],
    cache: EmbeddingCache | str | Path,
    shard_size: int = 1024,
    desc: str = "embedding",
) -> tuple[np.ndarray, CacheStats]:
    """Embeddings of `texts` in input order, encoding only what the cache lacks.

    Pass an open `EmbeddingCache` to keep its table in memory across calls (a frozen teacher
    does, since `label_texts` calls it once per shard); a path opens it for this call only.
    """
    if not isinstance(cache, EmbeddingCache):
        cache = EmbeddingCache(cache, encoder.fingerprint, encoder.dim)
    return cached_rows(cache, texts, encoder.encode, shard_size, desc)
