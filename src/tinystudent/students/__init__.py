"""Students: tiny models trained on the teacher's soft labels. One file per kind."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tinystudent.errors import RecipeError
from tinystudent.students.bag import BagConfig, EmbeddingBag
from tinystudent.students.base import Student, StudentConfig, StudentOutput
from tinystudent.students.bilstm import BiLSTM, BiLSTMConfig
from tinystudent.students.cnn import CNNConfig, TextCNN
from tinystudent.students.pqrnn import PQRNN, PQRNNConfig
from tinystudent.students.tiny_transformer import TinyTransformer, TransformerConfig

_KINDS: list[type[Student]] = [PQRNN, BiLSTM, TextCNN, EmbeddingBag, TinyTransformer]
STUDENTS: dict[str, type[Student]] = {cls.kind: cls for cls in _KINDS}


def student_config(kind: str, options: dict[str, Any]) -> StudentConfig:
    """Validate a student's options; unknown kinds and keys are errors that name them."""
    if kind not in STUDENTS:
        raise RecipeError(f"student.kind: unknown student {kind!r}; choose from {sorted(STUDENTS)}")
    return STUDENTS[kind].Config(**options)


def build_student(kind: str, options: dict[str, Any], label_names: list[str]) -> Student:
    cls = STUDENTS[kind]
    return cls(student_config(kind, options), label_names)


def load_student(model_dir: str | Path) -> Student:
    """Rebuild a saved student of any kind from its directory."""
    from safetensors.torch import load_file

    meta = Student.read_meta(model_dir)
    student = build_student(meta["kind"], meta["config"], meta["label_names"])
    student.load_preprocessing_state(meta.get("preprocessing", {}))
    student.load_state_dict(load_file(str(Path(model_dir) / "student.safetensors")))
    student.eval()
    return student


__all__ = [
    "STUDENTS",
    "BagConfig",
    "BiLSTM",
    "BiLSTMConfig",
    "CNNConfig",
    "EmbeddingBag",
    "PQRNN",
    "PQRNNConfig",
    "TextCNN",
    "TinyTransformer",
    "TransformerConfig",
    "Student",
    "StudentConfig",
    "StudentOutput",
    "build_student",
    "load_student",
    "student_config",
]
