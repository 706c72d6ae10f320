"""The multi-label split: k texts per label, seeded, and source documents kept apart."""

from __future__ import annotations

import numpy as np
import pytest

from tinystudent.data import MultiLabelDataset, make_multilabel_split
from tinystudent.data.multisplit import sample_k_per_label
from tinystudent.errors import DataError


def _dataset(n: int = 60, groups: list[list[int]] | None = None) -> MultiLabelDataset:
    rng = np.random.default_rng(0)
    targets = np.zeros((n, 3), dtype=np.uint8)
    for i in range(n):
        targets[i, rng.choice(3, size=1 + i % 2, replace=False)] = 1
    return MultiLabelDataset(
        "toy", [f"text {i}" for i in range(n)], targets, ["a", "b", "c"], groups=groups
    )


def test_k_per_label_counts_a_text_for_each_of_its_labels() -> None:
    # rows 0-2 carry a and b; rows 3-5 carry c only
    targets = np.array([[1, 1, 0]] * 3 + [[0, 0, 1]] * 3, dtype=np.uint8)
    import random

    chosen = sample_k_per_label(targets, list(range(6)), 2, random.Random(0), ["a", "b", "c"])
    assert len(chosen) == 4  # two a+b texts cover both labels; two more for c
    assert targets[chosen].sum(0).tolist() == [2, 2, 2]


def test_split_is_seeded_and_every_label_has_k() -> None:
    ds = _dataset()
    first = make_multilabel_split(ds, k=4, seed=0, test_size=0.25)
    again = make_multilabel_split(ds, k=4, seed=0, test_size=0.25)
    other = make_multilabel_split(ds, k=4, seed=1, test_size=0.25)
    assert first.to_json() == again.to_json()
    assert first.test_texts == other.test_texts  # the test split ignores the k-shot seed
    assert first.train_texts != other.train_texts
    assert first.multi_label and first.train_labels == [] and len(first.test_texts) == 15
    assert (np.asarray(first.train_targets).sum(0) >= 4).all()
    parts = [first.train_texts, first.test_texts, first.pool]
    assert sum(len(p) for p in parts) == 60 and len(set().union(*map(set, parts))) == 60


def test_texts_sharing_a_test_document_leave_train_and_pool() -> None:
    # text i is made of documents i and i+1: neighbours share a document
    groups = [[i, i + 1] for i in range(60)]
    split = make_multilabel_split(_dataset(groups=groups), k=2, seed=0, test_size=0.2)
    test_docs = {d for t in split.test_texts for d in groups[int(t.split()[1])]}
    for t in split.train_texts + split.pool:
        assert not test_docs.intersection(groups[int(t.split()[1])])
    assert split.cleaning["texts_sharing_test_documents_dropped"] > 0


def test_too_few_texts_for_k_names_the_label() -> None:
    with pytest.raises(DataError, match=r"label 'a' has \d+ texts outside the test split"):
        make_multilabel_split(_dataset(), k=40, seed=0)


def test_an_empty_label_set_is_refused() -> None:
    with pytest.raises(DataError, match="row 1 has an empty label set"):
        MultiLabelDataset("x", ["a", "b"], np.array([[1, 0], [0, 0]]), ["p", "q"])
