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
    """Rebuild a saved student of any kind from its directory (safetensors weights only)."""
    meta = Student.read_meta(model_dir)
    student = build_student(meta["kind"], meta["config"], meta["label_names"])
    student.load_preprocessing_state(meta.get("preprocessing", {}))
    student.load_state_dict(_student_weights(Path(model_dir)))
    if meta.get("multi_label"):
        student.set_multi_label(meta.get("thresholds"))
    student.eval()
    return student


def _student_weights(d: Path) -> dict[str, Any]:
    """`student.safetensors`; pickle files only with TINYSTUDENT_ALLOW_PICKLE=1 (safety.py)."""
    from safetensors.torch import load_file

    from tinystudent.errors import TinyStudentError
    from tinystudent.safety import (
        ALLOW_PICKLE_ENV,
        env_allows_pickle,
        load_pickled_state_dict,
        pickle_files,
        pickle_refused,
    )

    weights = d / "student.safetensors"
    if weights.exists():
        return load_file(str(weights))
    found = sorted(pickle_files(d), key=lambda p: p.stem != "student")  # student.* first
    if not found:
        raise TinyStudentError(f"{d}: no student.safetensors; is this a saved student?")
    if not env_allows_pickle():
        raise pickle_refused("student", d, found, f"set {ALLOW_PICKLE_ENV}=1")
    return load_pickled_state_dict(found[0])  # opted in: torch's weights-only loader


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
