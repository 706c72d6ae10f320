"""Starting vectors for a vocabulary: GloVe rows, or the teacher's own view of each word.

A student trained on a few thousand texts sees most words a handful of times; vectors that
already place similar words close together carry knowledge the transfer set cannot. Both
sources load lazily and only what the vocabulary needs: GloVe through a memory map (10k rows
read, not 400k), the teacher once per `fit_preprocessing`.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

import numpy as np
import torch

from tinystudent.assets import asset_path, resolve_model
from tinystudent.errors import AssetMissingError

GLOVE_DIM = 50
GLOVE_INDEX = "glove_6B_index.parquet"
GLOVE_VECTORS = "glove_6B_50d_emb.npy"


def check_glove_dim(source: str, embed_dim: int) -> None:
    """GloVe vectors have a fixed width; say so at config time, not deep inside training."""
    if source == "glove" and embed_dim != GLOVE_DIM:
        raise ValueError(
            f"GloVe vectors are {GLOVE_DIM}-d: set embed_dim={GLOVE_DIM}, got {embed_dim}"
        )


@functools.lru_cache(maxsize=1)
def _glove_rows() -> dict[str, int]:
    """Word -> row of the GloVe matrix (first occurrence wins); read once per process."""
    try:
        import pyarrow.parquet as pq
    except ImportError as e:  # pragma: no cover - depends on the environment
        raise AssetMissingError("GloVe's vocabulary is parquet: pip install pyarrow") from e
    table = pq.read_table(asset_path("glove-50d") / GLOVE_INDEX, columns=["index"])
    rows: dict[str, int] = {}
    for i, w in enumerate(table.column("index").to_pylist()):
        rows.setdefault(w, i)
    return rows


def glove_vectors(words: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """GloVe rows for `words` ([V, 50] float32, zeros where absent) and the found mask."""
    rows = _glove_rows()
    matrix = np.load(asset_path("glove-50d") / GLOVE_VECTORS, mmap_mode="r")
    found = np.array([w in rows for w in words], dtype=bool)
    out = np.zeros((len(words), matrix.shape[1]), dtype=np.float32)
    if found.any():
        src = np.array([rows[w] for w, f in zip(words, found) if f], dtype=np.int64)
        order = np.argsort(src)  # ascending reads are kind to the memory map
        out[np.flatnonzero(found)[order]] = matrix[src[order]]
    return out, found


def glove_init(words: Sequence[str]) -> np.ndarray:
    """GloVe where known; words GloVe lacks get random vectors of GloVe's own scale."""
    vectors, found = glove_vectors(words)
    missing = ~found
    if missing.any():
        std = float(vectors[found].std()) if found.any() else 0.1
        vectors[missing] = (torch.randn(int(missing.sum()), vectors.shape[1]) * std).numpy()
    return vectors


def teacher_word_vectors(words: Sequence[str], model: str, batch_size: int = 512) -> np.ndarray:
    """Each word encoded alone by the teacher encoder, mean-pooled as in sentence-transformers
    ([V, hidden] float32). Words are batched by token count so padding costs little."""
    from transformers import AutoModel, AutoTokenizer

    path = resolve_model(model)
    tok = AutoTokenizer.from_pretrained(path)
    encoder = AutoModel.from_pretrained(path, use_safetensors=True).eval()
    ids = tok(list(words), truncation=True, max_length=16)["input_ids"]
    order = sorted(range(len(words)), key=lambda i: len(ids[i]))
    out = np.zeros((len(words), int(encoder.config.hidden_size)), dtype=np.float32)
    with torch.inference_mode():
        for start in range(0, len(order), batch_size):
            idx = order[start : start + batch_size]
            enc = tok.pad({"input_ids": [ids[i] for i in idx]}, return_tensors="pt")
            h = encoder(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"])
            m = enc["attention_mask"].unsqueeze(-1).to(h.last_hidden_state.dtype)
            out[idx] = ((h.last_hidden_state * m).sum(1) / m.sum(1)).numpy()
    return out


def pca(x: np.ndarray, dim: int) -> np.ndarray:
    """Centred projection on the top `dim` principal axes (numpy SVD); zero columns where the
    data has fewer axes than `dim` (a vocabulary smaller than the width)."""
    xc = (x - x.mean(0, keepdims=True)).astype(np.float64)
    _, _, vt = np.linalg.svd(xc, full_matrices=False)
    k = min(dim, vt.shape[0])
    out = np.zeros((len(x), dim), dtype=np.float32)
    out[:, :k] = xc @ vt[:k].T
    return out


def teacher_init(
    words: Sequence[str], dim: int, model: str, skip: int = 2, batch_size: int = 512
) -> np.ndarray:
    """model2vec-style static vectors: teacher word embeddings reduced by PCA to `dim`.

    The first `skip` entries (the `<pad>`/`<unk>` specials) are not words: they get the
    zero vector, i.e. the mean word after centring.
    """
    out = np.zeros((len(words), dim), dtype=np.float32)
    real = list(words[skip:])
    if real:
        out[skip:] = pca(teacher_word_vectors(real, model, batch_size), dim)
    return out
