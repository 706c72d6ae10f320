"""The multi-label dataset: each text carries a set of labels, kept as a multi-hot matrix.

A single-label `TextDataset` holds one label id per text; a multi-label one cannot, so it is
its own small type rather than a flag threaded through the single-label code. `groups` says
which source documents a text was built from (the built-in `bbc_pairs` joins two articles
into one text): the split keeps every group on one side, so no test document is ever seen
in training text.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from tinystudent.errors import DataError


@dataclass
class MultiLabelDataset:
    """Texts with `targets` [n, labels] of 0/1 (row i's labels), plus unlabeled text."""

    name: str
    texts: list[str]
    targets: np.ndarray
    label_names: list[str]
    unlabeled: list[str] = field(default_factory=list)
    cleaning: dict[str, Any] = field(default_factory=dict)
    #: source-document ids of each text (None: each text is its own document)
    groups: list[list[int]] | None = None

    def __post_init__(self) -> None:
        self.targets = np.asarray(self.targets, dtype=np.uint8)
        n, width = len(self.texts), len(self.label_names)
        if not self.texts:
            raise DataError(f"{self.name}: no labeled rows")
        if self.targets.shape != (n, width):
            raise DataError(
                f"{self.name}: targets of shape {self.targets.shape} for {n} texts and "
                f"{width} labels"
            )
        if width < 2:
            raise DataError(f"{self.name}: multi-label classification needs at least two labels")
        empty = np.flatnonzero(self.targets.sum(1) == 0)
        if len(empty):
            raise DataError(f"{self.name}: row {int(empty[0])} has an empty label set")
        if self.groups is not None and len(self.groups) != n:
            raise DataError(f"{self.name}: {len(self.groups)} groups for {n} texts")

    def label_counts(self) -> dict[str, int]:
        """Texts carrying each label (a text counts once for each of its labels)."""
        return {n: int(c) for n, c in zip(self.label_names, self.targets.sum(0))}

    def label_sets(self) -> list[list[str]]:
        return label_sets(self.targets, self.label_names)


def label_sets(targets: np.ndarray | list[list[int]], names: list[str]) -> list[list[str]]:
    """The label names of each multi-hot row, in schema order."""
    return [[names[j] for j, v in enumerate(row) if v] for row in np.asarray(targets)]


def multi_hot(sets: list[list[str]], names: list[str]) -> np.ndarray:
    """[len(sets), len(names)] uint8 rows from label-name lists (every name must be known)."""
    index = {n: j for j, n in enumerate(names)}
    out = np.zeros((len(sets), len(names)), dtype=np.uint8)
    for i, labels in enumerate(sets):
        for label in labels:
            out[i, index[label]] = 1
    return out
