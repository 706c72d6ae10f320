"""Test-split predictions of teacher and student, kept in the run directory (predictions.json).

The report's figures (confusion matrices, reliability diagrams, disagreements) are drawn from
these, so `tinystudent report RUN_DIR` can rebuild the page without loading any model.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from tinystudent.errors import TinyStudentError
from tinystudent.io import read_json, write_json

FILENAME = "predictions.json"
FORMAT = 1


@dataclass
class SplitPredictions:
    """Gold labels and both systems' probabilities on the test split, row i = texts[i]."""

    label_names: list[str]
    texts: list[str]
    labels: list[int]
    teacher: np.ndarray  # [n_texts, n_labels]
    student: np.ndarray

    def __post_init__(self) -> None:
        n, c = len(self.texts), len(self.label_names)
        if len(self.labels) != n:
            raise TinyStudentError(f"predictions: {len(self.labels)} labels for {n} texts")
        for name in ("teacher", "student"):
            shape = np.shape(getattr(self, name))
            if shape != (n, c):
                raise TinyStudentError(
                    f"predictions: {name} probabilities have shape {shape}, expected {(n, c)}"
                )
        if any(not 0 <= y < c for y in self.labels):
            raise TinyStudentError(f"predictions: a label is outside 0..{c - 1}")

    def to_json(self) -> dict[str, Any]:
        # 6 decimals: the figures need no more, and a 2,000-text split stays small
        return {
            "format": FORMAT,
            "label_names": self.label_names,
            "texts": self.texts,
            "labels": self.labels,
            "teacher_probs": np.round(self.teacher, 6).tolist(),
            "student_probs": np.round(self.student, 6).tolist(),
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> SplitPredictions:
        try:
            return cls(
                list(data["label_names"]),
                list(data["texts"]),
                [int(y) for y in data["labels"]],
                np.asarray(data["teacher_probs"], dtype=np.float64),
                np.asarray(data["student_probs"], dtype=np.float64),
            )
        except (KeyError, TypeError, ValueError) as e:
            raise TinyStudentError(f"predictions: not a predictions file ({e!r})") from e


def save_predictions(run_dir: str | Path, preds: SplitPredictions) -> Path:
    path = Path(run_dir) / FILENAME
    write_json(path, preds.to_json())
    return path


def load_predictions(run_dir: str | Path) -> SplitPredictions | None:
    """The run's predictions, or None for a run made before they were saved."""
    path = Path(run_dir) / FILENAME
    if not path.exists():
        return None
    try:
        return SplitPredictions.from_json(read_json(path))
    except TinyStudentError as e:
        raise TinyStudentError(f"{path}: {str(e).removeprefix('predictions: ')}") from e
    except ValueError as e:  # not JSON at all
        raise TinyStudentError(f"{path}: not valid JSON ({e})") from e
