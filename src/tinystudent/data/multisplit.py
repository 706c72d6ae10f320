"""The multi-label split: a held-out test set that shares no source document with the rest,
then k texts per label, seeded.

The test split depends only on `split_seed` (a seeded shuffle of the texts, not stratified:
label sets do not stratify cleanly), so every seed and student is scored on the same texts.
A text built from a document that also appears in a test text is dropped from train and pool.
k-shot sampling walks the labels in schema order and draws texts carrying the label until it
has k; a text counts for every label it carries, so a label may end with more than k.
"""

from __future__ import annotations

import random

import numpy as np

from tinystudent.data.multilabel import MultiLabelDataset
from tinystudent.data.split import Split, held_out_size
from tinystudent.errors import DataError


def sample_k_per_label(
    targets: np.ndarray, candidates: list[int], k: int, rng: random.Random, names: list[str]
) -> list[int]:
    """Indices (from `candidates`) holding at least k texts of every label."""
    chosen: list[int] = []
    taken: set[int] = set()
    for c, name in enumerate(names):
        have = int(targets[chosen, c].sum()) if chosen else 0
        if have >= k:
            continue
        pool = [i for i in candidates if targets[i, c] and i not in taken]
        if len(pool) < k - have:
            raise DataError(
                f"label {name!r} has {have + len(pool)} texts outside the test split, fewer "
                f"than k={k}; lower k (data.k) or add examples"
            )
        picked = rng.sample(pool, k - have)
        chosen.extend(picked)
        taken.update(picked)
    return chosen


def make_multilabel_split(
    ds: MultiLabelDataset,
    k: int,
    seed: int,
    test_size: float | int = 0.2,
    split_seed: int = 0,
) -> Split:
    """Test texts by `split_seed`, documents kept apart, then k texts per label by `seed`."""
    n = len(ds.texts)
    n_test = held_out_size(ds.name, n, k, test_size)
    groups = ds.groups if ds.groups is not None else [[i] for i in range(n)]
    order = list(range(n))
    random.Random(split_seed).shuffle(order)
    test_idx = sorted(order[:n_test])
    test_docs = {d for i in test_idx for d in groups[i]}
    rest = sorted(i for i in order[n_test:] if not test_docs.intersection(groups[i]))
    try:
        train_idx = sample_k_per_label(ds.targets, rest, k, random.Random(seed), ds.label_names)
    except DataError as e:
        raise DataError(f"{ds.name}: {e}") from None
    taken = set(train_idx)
    pool = [ds.texts[i] for i in rest if i not in taken] + list(ds.unlabeled)
    cleaning = dict(ds.cleaning)
    cleaning["texts_sharing_test_documents_dropped"] = n - n_test - len(rest)
    return Split(
        label_names=list(ds.label_names),
        train_texts=[ds.texts[i] for i in train_idx],
        train_labels=[],
        test_texts=[ds.texts[i] for i in test_idx],
        test_labels=[],
        pool=pool,
        cleaning=cleaning,
        multi_label=True,
        train_targets=ds.targets[train_idx].tolist(),
        test_targets=ds.targets[test_idx].tolist(),
    )
