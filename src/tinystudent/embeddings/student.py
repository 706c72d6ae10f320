"""A tiny student turned into a sentence encoder: its pooled vector, projected to the teacher's.

Every student kind ends in `head(pooled vector)`, so the wrapper swaps the classifier head for
the identity and reads the pooled vector out of `logits`: the student's own featurize, layers
and pooling are reused unchanged, whatever the kind (pqrnn pools mean + max of its last QRNN
layer, bag the mean word vector, transformer the mean of its last layer). A linear projection
maps that vector to the teacher's width when the two differ.

Saved as `embedder.safetensors` + `embedder.json`; `EmbeddingStudent.load(dir).encode(...)`
behaves like `SentenceTransformer.encode` for the common arguments.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from tinystudent.devices import module_device, to_device
from tinystudent.embeddings.evaluate import unit_rows
from tinystudent.errors import TinyStudentError
from tinystudent.io import read_json, save_safetensors, write_json
from tinystudent.students import STUDENTS, Student, build_student

WEIGHTS = "embedder.safetensors"
META = "embedder.json"
FORMAT = "tinystudent-embedder"
#: Students are classifiers; the wrapper gives them one placeholder label and drops the head.
PLACEHOLDER_LABELS = ["embedding"]


def student_options(kind: str, options: dict[str, Any], teacher_model: str) -> dict[str, Any]:
    """The student's options, with `teacher_model` (word-vector or layer source) defaulting to
    the embedding teacher for kinds that have that option."""
    out = dict(options)
    if kind in STUDENTS and "teacher_model" in STUDENTS[kind].Config.model_fields:
        out.setdefault("teacher_model", teacher_model)
    return out


class EmbeddingStudent(nn.Module):
    """`forward(**features)` -> [batch, dim] embeddings; `encode(texts)` -> numpy."""

    def __init__(self, student: Student, dim: int) -> None:
        super().__init__()
        if not isinstance(getattr(student, "head", None), nn.Module):
            raise TypeError(
                f"{type(student).__name__} has no `head` module to replace; build it (or call "
                "fit_preprocessing) before wrapping"
            )
        student.head = nn.Identity()  # the head's input is the pooled vector, for every kind
        self.student = student
        self.dim = int(dim)
        self.pooled_dim = self._probe_width()
        self.projection: nn.Module = (
            nn.Linear(self.pooled_dim, self.dim) if self.pooled_dim != self.dim else nn.Identity()
        )

    def _probe_width(self) -> int:
        was_training = self.student.training
        self.student.eval()
        with torch.no_grad():
            width = int(self.student(**self.student.featurize(["width probe"])).logits.shape[-1])
        self.student.train(was_training)
        return width

    @classmethod
    def build(
        cls, kind: str, options: dict[str, Any], dim: int, texts: list[str]
    ) -> EmbeddingStudent:
        """A fresh student of `kind`, its preprocessing fitted on `texts`, wrapped for `dim`."""
        student = build_student(kind, options, PLACEHOLDER_LABELS)
        student.fit_preprocessing(texts)
        return cls(student, dim)

    @property
    def kind(self) -> str:
        return self.student.kind

    def featurize(self, texts: list[str]) -> dict[str, torch.Tensor]:
        return self.student.featurize(texts)

    def forward(self, **features: torch.Tensor) -> torch.Tensor:
        pooled: torch.Tensor = self.student(**features).logits
        out: torch.Tensor = self.projection(pooled)
        return out

    # -- the sentence-transformers surface -------------------------------------------------
    @torch.inference_mode()
    def encode(
        self,
        sentences: str | list[str],
        batch_size: int = 32,
        show_progress_bar: bool | None = None,
        convert_to_numpy: bool = True,
        normalize_embeddings: bool = False,
    ) -> np.ndarray:
        """float32 [n, dim] in input order ([dim] for a single string), like SentenceTransformer.

        Batches are length-sorted so little compute goes to padding; `show_progress_bar` and
        `convert_to_numpy` are accepted for drop-in use (the result is always numpy).
        """
        del show_progress_bar, convert_to_numpy
        single = isinstance(sentences, str)
        texts = [sentences] if isinstance(sentences, str) else list(sentences)
        self.eval()
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        for i in range(0, len(order), batch_size):
            idx = order[i : i + batch_size]
            feats = to_device(self.featurize([texts[j] for j in idx]), module_device(self))
            vectors = self(**feats).float()
            if normalize_embeddings:
                vectors = nn.functional.normalize(vectors, dim=-1)
            out[idx] = vectors.cpu().numpy()
        return out[0] if single else out

    def get_embedding_dimension(self) -> int:
        return self.dim

    get_sentence_embedding_dimension = get_embedding_dimension

    def similarity(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """Cosine similarity matrix [len(a), len(b)], as SentenceTransformer.similarity."""
        return np.asarray(unit_rows(np.atleast_2d(a)) @ unit_rows(np.atleast_2d(b)).T)

    # -- persistence -----------------------------------------------------------------------
    def num_params(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def save(self, out_dir: str | Path, extra: dict[str, Any] | None = None) -> None:
        """Weights as safetensors and a JSON config; `extra` lands in the JSON (e.g. metrics)."""
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        save_safetensors(out / WEIGHTS, self.state_dict(), {"format": FORMAT, "kind": self.kind})
        write_json(
            out / META,
            {
                "format": FORMAT,
                "kind": self.kind,
                "dim": self.dim,
                "pooled_dim": self.pooled_dim,
                "config": self.student.cfg.model_dump(),
                "preprocessing": self.student.preprocessing_state(),
                "params": self.num_params(),
                **(extra or {}),
            },
        )

    @staticmethod
    def read_meta(model_dir: str | Path) -> dict[str, Any]:
        path = Path(model_dir) / META
        if not path.exists():
            raise TinyStudentError(f"{model_dir}: no {META}; is this a saved embedding student?")
        meta: dict[str, Any] = read_json(path)
        if meta.get("format") != FORMAT:
            raise TinyStudentError(f"{path}: format {meta.get('format')!r}, expected {FORMAT!r}")
        return meta

    @classmethod
    def load(cls, model_dir: str | Path) -> EmbeddingStudent:
        """Rebuild a saved embedding student from its directory alone (no teacher needed)."""
        from safetensors.torch import load_file

        meta = cls.read_meta(model_dir)
        student = build_student(meta["kind"], meta["config"], PLACEHOLDER_LABELS)
        student.load_preprocessing_state(meta.get("preprocessing", {}))
        model = cls(student, int(meta["dim"]))
        model.load_state_dict(load_file(str(Path(model_dir) / WEIGHTS)))
        model.eval()
        return model


def load_embedding_student(model_dir: str | Path) -> EmbeddingStudent:
    return EmbeddingStudent.load(model_dir)
