"""The built-in bbc_pairs set, built from the packaged BBC News corpus: every article used
once, pairs across two topics, and a split that keeps articles apart."""

from __future__ import annotations

import numpy as np
import pytest

from tinystudent.data import load_multilabel_dataset, make_multilabel_split

pytestmark = pytest.mark.integration


def test_bbc_pairs_keeps_test_articles_out_of_train_and_pool() -> None:
    ds = load_multilabel_dataset("bbc_pairs")
    assert ds.groups is not None
    assert ds.label_names == ["business", "entertainment", "politics", "sports", "tech"]
    sizes = ds.targets.sum(1)
    assert set(sizes.tolist()) == {1, 2} and 400 < int((sizes == 2).sum()) < 700
    articles = [a for g in ds.groups for a in g]
    assert len(articles) == len(set(articles))  # every article used exactly once
    for text, g, row in zip(ds.texts, ds.groups, ds.targets):
        assert len(text.split("\n\n")) == len(g) == int(row.sum())  # two topics per pair

    split = make_multilabel_split(ds, k=16, seed=0, test_size=0.2)
    index = {t: i for i, t in enumerate(ds.texts)}
    test_articles = {a for t in split.test_texts for a in ds.groups[index[t]]}
    seen = {a for t in split.train_texts + split.pool for a in ds.groups[index[t]]}
    assert not test_articles & seen
    # and by content: no lead of a test text appears inside any train or pool text
    test_leads = {lead for t in split.test_texts for lead in t.split("\n\n")}
    other_leads = {lead for t in split.train_texts + split.pool for lead in t.split("\n\n")}
    assert not test_leads & other_leads
    assert (np.asarray(split.train_targets).sum(0) >= 16).all()
    assert load_multilabel_dataset("bbc_pairs").texts == ds.texts  # fixed, not re-drawn
