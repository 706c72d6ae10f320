"""The in-memory dataset every loader returns: parallel texts and label ids, plus unlabeled text."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from tinystudent.errors import DataError


@dataclass
class TextDataset:
    """Labeled texts (label ids index `label_names`) and extra unlabeled in-domain texts."""

    name: str
    texts: list[str]
    labels: list[int]
    label_names: list[str]
    unlabeled: list[str] = field(default_factory=list)
    # What loading changed, for the run's report (e.g. rows dropped by `data.on_conflict`).
    cleaning: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if len(self.texts) != len(self.labels):
            raise DataError(f"{self.name}: {len(self.texts)} texts but {len(self.labels)} labels")
        if not self.texts:
            raise DataError(f"{self.name}: no labeled rows")
        n = len(self.label_names)
        for i, y in enumerate(self.labels):
            if not 0 <= y < n:
                raise DataError(f"{self.name}: row {i} has label id {y} outside 0..{n - 1}")
        if len(set(self.labels)) < 2:
            raise DataError(
                f"{self.name}: only one class ({self.label_names[self.labels[0]]!r}); "
                "classification needs at least two"
            )

    def class_counts(self) -> dict[str, int]:
        counts = {name: 0 for name in self.label_names}
        for y in self.labels:
            counts[self.label_names[y]] += 1
        return counts


def dedupe(texts: list[str], labels: list[int]) -> tuple[list[str], list[int]]:
    """Drop repeated texts (first wins), so no text can sit in both the train and test split."""
    seen: set[str] = set()
    out_t: list[str] = []
    out_y: list[int] = []
    for t, y in zip(texts, labels):
        if t not in seen:
            seen.add(t)
            out_t.append(t)
            out_y.append(y)
    return out_t, out_y
