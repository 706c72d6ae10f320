"""Soft labels: the teacher labels the transfer set once, into a persistent content-keyed cache.

Frozen encoders' embeddings get the same treatment (`embeddings.py`), one level earlier.
"""

from tinystudent.label.cache import (
    CacheStats,
    LabelStats,
    ShardCache,
    SoftLabelCache,
    cached_rows,
    label_texts,
)
from tinystudent.label.embeddings import EmbeddingCache, Encoder, embed_texts

__all__ = [
    "CacheStats",
    "EmbeddingCache",
    "Encoder",
    "LabelStats",
    "ShardCache",
    "SoftLabelCache",
    "cached_rows",
    "embed_texts",
    "label_texts",
]
