"""What the rest of the pipeline needs from any teacher: a fingerprint and probabilities."""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

import numpy as np


class Teacher(Protocol):
    """A fingerprint that changes whenever its outputs could, and a batch probability call."""

    label_names: list[str]

    @property
    def fingerprint(self) -> str: ...

    def predict_proba(self, texts: list[str]) -> np.ndarray: ...


class FittedTeacher(Teacher, Protocol):
    """A teacher the pipeline fitted (any kind of `teachers.registry`): it also saves itself
    and says how many weights it has."""

    def num_params(self) -> int: ...

    def save(self, out_dir: str | Path) -> None: ...
