"""The embedding teacher: any sentence-transformers model, read from a local folder.

Its vectors of the training texts are computed once into the content-keyed embedding cache
(`label/embeddings.py`), keyed by a fingerprint of its weights and settings, so every student,
epoch and rerun reuses them (sentence-transformers' advice: teacher outputs are a dataset
column, not part of the training step).
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict, Field

from tinystudent.assets import resolve_model
from tinystudent.checkpoint import hash_weights
from tinystudent.devices import resolve_device
from tinystudent.errors import AssetMissingError, TinyStudentError
from tinystudent.evaluate.speed import torch_threads
from tinystudent.label.embeddings import EmbeddingCache, embed_texts
from tinystudent.safety import check_weights_dir


class SentenceTeacherConfig(BaseModel):
    """Which sentence-transformers model, and how it reads texts."""

    model_config = ConfigDict(extra="forbid")

    model: str = Field("minilm-l6", description="catalogue name, local folder or hub id")
    max_seq_length: int | None = Field(
        128, ge=8, le=8192, description="word pieces read per text; null keeps the model's own"
    )
    batch_size: int = Field(64, ge=1)
    threads: int | None = Field(None, ge=1, description="torch threads while encoding")
    trust_remote_code: bool = False  # a model folder's own Python code would run on load
    allow_pickle: bool = False  # pickle weights can run code on load; see safety.py


class SentenceTeacher:
    """A loaded sentence-transformers model with the `Encoder` protocol of the embedding cache."""

    def __init__(self, model: Any, cfg: SentenceTeacherConfig) -> None:
        self.model = model
        self.cfg = cfg
        self._fingerprint: str | None = None

    @classmethod
    def load(
        cls, cfg: SentenceTeacherConfig | None = None, device: str | torch.device = "cpu"
    ) -> SentenceTeacher:
        """The configured model on `device` (cpu, cuda, auto); vectors come back as numpy."""
        cfg = cfg or SentenceTeacherConfig()
        where = str(resolve_device(device))
        try:
            from sentence_transformers import SentenceTransformer
        except ImportError:
            raise AssetMissingError(
                "the embedding teacher needs sentence-transformers: pip install "
                "sentence-transformers"
            ) from None
        path = resolve_model(cfg.model)
        check_weights_dir(path, "teacher.model", cfg.allow_pickle, "set teacher.allow_pickle: true")
        try:
            model = SentenceTransformer(path, device=where, trust_remote_code=cfg.trust_remote_code)
        except (OSError, ValueError) as e:  # missing files, refused custom code, bad config
            msg = " ".join(str(e).split())
            raise TinyStudentError(f"teacher.model {cfg.model!r}: cannot load ({msg})") from None
        if cfg.max_seq_length is not None:
            model.max_seq_length = cfg.max_seq_length
        model.eval()
        return cls(model, cfg)

    @property
    def dim(self) -> int:
        # newer sentence-transformers renamed get_sentence_embedding_dimension
        get = getattr(self.model, "get_embedding_dimension", None)
        return int(get() if get else self.model.get_sentence_embedding_dimension())

    @property
    def fingerprint(self) -> str:
        """Hash of the weights, the module stack (pooling, normalisation) and the length cap."""
        if self._fingerprint is None:
            h = hashlib.sha256(f"{self.model.max_seq_length}|{self.model!r}".encode())
            hash_weights(h, self.model.state_dict().items())
            self._fingerprint = h.hexdigest()[:32]
        return self._fingerprint

    def num_params(self) -> int:
        return sum(p.numel() for p in self.model.parameters())

    @torch.inference_mode()
    def encode(self, texts: list[str]) -> np.ndarray:
        """float32 [n, dim] in input order (sentence-transformers sorts by length inside)."""
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        with torch_threads(self.cfg.threads):
            vectors = self.model.encode(
                list(texts),
                batch_size=self.cfg.batch_size,
                show_progress_bar=False,
                convert_to_numpy=True,
            )
        return np.asarray(vectors, dtype=np.float32)


class CachedTeacher:
    """The teacher behind its embedding cache: only texts it has never seen are encoded."""

    def __init__(self, teacher: SentenceTeacher, cache_root: str | Path, shard_size: int = 1024):
        self.teacher = teacher
        self.cache = EmbeddingCache(cache_root, teacher.fingerprint, teacher.dim)
        self.shard_size = shard_size
        self.computed = 0

    def __call__(self, texts: list[str]) -> np.ndarray:
        vectors, stats = embed_texts(
            self.teacher, texts, self.cache, self.shard_size, desc="teacher embeddings"
        )
        self.computed += stats.computed
        return vectors
