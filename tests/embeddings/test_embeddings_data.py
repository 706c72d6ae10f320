"""The transfer set: sources read, test splits held out of training, caps and dedupe seeded."""

from __future__ import annotations

import pytest

from tinystudent.data import load_dataset
from tinystudent.embeddings.data import (
    EmbedDataSpec,
    TextSource,
    collect_texts,
    heldout_task,
    read_text_file,
)
from tinystudent.errors import DataError


def test_heldout_task_matches_the_pipeline_split(toy_csv):
    from tinystudent.data import make_split

    ds = load_dataset(str(toy_csv))
    task = heldout_task(ds, 40, split_seed=0)
    split = make_split(ds, k=4, seed=3, test_size=40, split_seed=0)
    assert task.test_texts == split.test_texts  # the same split whatever the k-shot seed
    assert len(task.train_texts) == len(ds.texts) - 40
    assert not set(task.train_texts) & set(task.test_texts)


def test_test_texts_never_reach_training_even_through_a_file(toy_csv, tmp_path):
    ds = load_dataset(str(toy_csv))
    test = heldout_task(ds, 40).test_texts
    leaky = tmp_path / "leaky.txt"
    leaky.write_text("\n".join(test[:10] + ["a brand new text"]) + "\n", encoding="utf-8")
    spec = EmbedDataSpec(
        sources=[
            TextSource(dataset=str(toy_csv), test_size=40),
            TextSource(file=str(leaky)),
        ],
        max_texts=None,
    )
    out = collect_texts(spec)
    assert not set(out.texts) & set(test)
    assert "a brand new text" in out.texts
    assert len(out.texts) == len(set(out.texts)) == len(ds.texts) - 40 + 1
    assert [t.name for t in out.tasks] == [out.tasks[0].name] and len(out.tasks) == 1


def test_caps_sentences_and_seed(tmp_path):
    path = tmp_path / "t.txt"
    doc = "The first sentence is long enough. The second sentence is also long enough."
    path.write_text(f"{doc}\nshort\n\nshort\n", encoding="utf-8")
    whole = collect_texts(EmbedDataSpec(sources=[TextSource(file=str(path))]))
    assert sorted(whole.texts) == sorted([doc, "short"])  # deduplicated, blank lines dropped
    split = collect_texts(EmbedDataSpec(sources=[TextSource(file=str(path), sentences=True)]))
    assert len(split.texts) == 3 and "short" in split.texts  # a text with no sentence is kept
    capped = EmbedDataSpec(sources=[TextSource(file=str(path), sentences=True)], max_texts=2)
    assert collect_texts(capped).texts == collect_texts(capped).texts  # seeded
    assert len(collect_texts(capped).texts) == 2


def test_bad_sources_are_errors(tmp_path):
    with pytest.raises(ValueError, match="exactly one of"):
        TextSource()
    with pytest.raises(ValueError, match="exactly one of"):
        TextSource(dataset="rotten_tomatoes", file="x.txt")
    with pytest.raises(ValueError, match="test_size only apply"):
        TextSource(file="x.txt", test_size=10)
    with pytest.raises(DataError, match="no such text file"):
        read_text_file(tmp_path / "missing.txt")
    (tmp_path / "blank.txt").write_text("\n  \n", encoding="utf-8")
    with pytest.raises(DataError, match="no non-empty line"):
        read_text_file(tmp_path / "blank.txt")
