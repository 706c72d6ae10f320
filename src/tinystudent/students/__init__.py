"""Students: tiny models trained on the teacher's soft labels. One file per kind."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tinystudent.errors import RecipeError
from tinystudent.students.base import Student, StudentConfig, StudentOutput
from tinystudent.students.pqrnn import PQRNN, PQRNNConfig

STUDENTS: dict[str, type[Student]] = {cls.kind: cls for cls in [PQRNN]}


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
    "PQRNN",
    "PQRNNConfig",
    "Student",
    "StudentConfig",
    "StudentOutput",
    "build_student",
    "load_student",
    "student_config",
]
