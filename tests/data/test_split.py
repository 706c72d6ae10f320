"""Splits: seeded, disjoint, k per class, and the test split never moves with the k-shot seed."""

from __future__ import annotations

import pytest

from tinystudent.data import TextDataset, make_split
from tinystudent.errors import DataError


def dataset(n: int = 300) -> TextDataset:
    return TextDataset(
        "toy",
        [f"text {i}" for i in range(n)],
        [i % 3 for i in range(n)],
        ["a", "b", "c"],
        unlabeled=["extra 1", "extra 2"],
    )


def test_parts_are_disjoint_and_complete() -> None:
    ds = dataset()
    s = make_split(ds, k=5, seed=1, test_size=60)
    train, test, pool = set(s.train_texts), set(s.test_texts), set(s.pool)
    assert not (train & test) and not (train & pool) and not (test & pool)
    assert len(train) + len(test) + len(pool) == len(ds.texts) + len(ds.unlabeled)
    assert len(test) == 60
    assert sorted(s.train_labels) == sorted([0, 1, 2] * 5)


def test_test_split_is_fixed_across_seeds() -> None:
    ds = dataset()
    a, b = make_split(ds, 5, seed=0, test_size=0.2), make_split(ds, 5, seed=7, test_size=0.2)
    assert a.test_texts == b.test_texts
    assert a.train_texts != b.train_texts
    assert make_split(ds, 5, seed=7, test_size=0.2).train_texts == b.train_texts


def test_test_split_is_stratified() -> None:
    s = make_split(dataset(), 5, seed=0, test_size=0.2)
    counts = [s.test_labels.count(c) for c in range(3)]
    assert counts == [20, 20, 20]


def test_k_larger_than_a_class() -> None:
    with pytest.raises(DataError, match="fewer than k=200"):
        make_split(dataset(), k=200, seed=0, test_size=0.2)


@pytest.mark.parametrize("test_size", [0, 300, 1.0])
def test_bad_test_size(test_size: float) -> None:
    with pytest.raises(DataError):
        make_split(dataset(), k=2, seed=0, test_size=test_size)


def test_round_trip_json() -> None:
    from tinystudent.data import Split

    s = make_split(dataset(), 2, 0, 30)
    assert Split.from_json(s.to_json()) == s
