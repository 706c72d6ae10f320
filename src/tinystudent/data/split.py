"""Seeded k-per-class sampling around a fixed held-out test split.

The test split depends only on `split_seed`, never on the k-shot seed, so every seed and every
student is scored on the same texts; the pool is everything else, with its labels dropped.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any

from tinystudent.data.dataset import TextDataset
from tinystudent.errors import DataError

#: Bump when the split (which texts land in train, test or pool) changes for the same recipe:
#: the data stage and everything after it rerun (see `tinystudent.code_version`).
CODE_VERSION = 1


@dataclass
class Split:
    """The three disjoint parts every later stage works from."""

    label_names: list[str]
    train_texts: list[str]
    train_labels: list[int]
    test_texts: list[str]
    test_labels: list[int]
    pool: list[str]  # unlabeled in-domain text: the transfer set before generation
    cleaning: dict[str, Any] = field(default_factory=dict)  # what loading changed (report)
    # Multi-label splits (`data/multisplit.py`): the label sets as multi-hot rows; the
    # single-label `train_labels` / `test_labels` are then empty.
    multi_label: bool = False
    train_targets: list[list[int]] | None = None
    test_targets: list[list[int]] | None = None

    def to_json(self) -> dict[str, object]:
        data = dict(self.__dict__)
        if not self.multi_label:  # single-label split.json files stay as they were
            for key in ("multi_label", "train_targets", "test_targets"):
                data.pop(key)
        return data

    @classmethod
    def from_json(cls, data: dict[str, object]) -> Split:
        return cls(**data)  # type: ignore[arg-type]


def held_out_size(name: str, n: int, k: int, test_size: float | int) -> int:
    """How many of `n` texts the test split takes (a fraction or a count), checked with k."""
    if k < 1:
        raise DataError(f"k must be at least 1, got {k}")
    n_test = int(round(test_size * n)) if isinstance(test_size, float) else int(test_size)
    if not 0 < n_test < n:
        raise DataError(f"{name}: test_size={test_size} leaves no test or no train rows out of {n}")
    return n_test


def make_split(
    ds: TextDataset, k: int, seed: int, test_size: float | int = 0.2, split_seed: int = 0
) -> Split:
    """Stratified test split (fixed by `split_seed`), then k labeled examples per class."""
    n = len(ds.texts)
    n_test = held_out_size(ds.name, n, k, test_size)

    by_class: dict[int, list[int]] = {c: [] for c in range(len(ds.label_names))}
    for i, y in enumerate(ds.labels):
        by_class[y].append(i)
    test_rng = random.Random(split_seed)
    test_idx: list[int] = []
    rest: dict[int, list[int]] = {}
    for c, idx in by_class.items():
        idx = idx[:]
        test_rng.shuffle(idx)
        take = round(n_test * len(idx) / n)
        test_idx.extend(idx[:take])
        rest[c] = idx[take:]

    shot_rng = random.Random(seed)
    train_idx: list[int] = []
    for c, idx in rest.items():
        if len(idx) < k:
            raise DataError(
                f"{ds.name}: class {ds.label_names[c]!r} has {len(idx)} examples outside the "
                f"test split, fewer than k={k}; lower k (data.k) or add examples"
            )
        train_idx.extend(shot_rng.sample(idx, k))
    taken = set(train_idx) | set(test_idx)
    pool = [ds.texts[i] for i in range(n) if i not in taken] + list(ds.unlabeled)
    test_idx.sort()
    return Split(
        label_names=list(ds.label_names),
        train_texts=[ds.texts[i] for i in train_idx],
        train_labels=[ds.labels[i] for i in train_idx],
        test_texts=[ds.texts[i] for i in test_idx],
        test_labels=[ds.labels[i] for i in test_idx],
        pool=pool,
        cleaning=dict(ds.cleaning),
    )
