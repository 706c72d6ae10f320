"""What the rest of the pipeline needs from any teacher: a fingerprint and probabilities."""

from __future__ import annotations

from typing import Protocol

import numpy as np


class Teacher(Protocol):
    """A fingerprint that changes whenever its outputs could, and a batch probability call."""

    label_names: list[str]

    @property
    def fingerprint(self) -> str: ...

    def predict_proba(self, texts: list[str]) -> np.ndarray: ...
