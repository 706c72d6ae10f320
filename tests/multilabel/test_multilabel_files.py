"""Multi-label files: JSON lists, delimited CSV cells, and one clear error per bad input."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from tinystudent.data import DataProblemsError, load_multilabel_dataset, load_multilabel_file
from tinystudent.errors import DataError


def _jsonl(path: Path, rows: list[dict[str, object]]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def test_jsonl_lists_become_a_multi_hot_matrix(tmp_path: Path) -> None:
    path = _jsonl(
        tmp_path / "a.jsonl",
        [
            {"text": "one", "labels": ["sport", "politics"]},
            {"text": "two", "labels": ["tech"]},
            {"text": "three", "labels": "sport"},  # a plain string: a one-label set
            {"text": "pool text", "labels": None},  # unlabeled: joins the pool
            {"text": "one", "labels": ["politics", "sport", "sport"]},  # same set: kept once
        ],
    )
    ds = load_multilabel_file(path, label_column="labels")
    assert ds.label_names == ["politics", "sport", "tech"]
    assert ds.texts == ["one", "two", "three"]
    np.testing.assert_array_equal(ds.targets, [[1, 1, 0], [0, 0, 1], [0, 1, 0]])
    assert ds.label_sets() == [["politics", "sport"], ["tech"], ["sport"]]
    assert ds.unlabeled == ["pool text"] and ds.cleaning["duplicate_rows_dropped"] == 1


def test_csv_cells_are_split_by_the_separator(tmp_path: Path) -> None:
    path = tmp_path / "a.csv"
    path.write_text("text,label\nfirst,sport|tech\nsecond, tech \nthird,\n", encoding="utf-8")
    ds = load_multilabel_file(path, label_separator="|")
    assert ds.label_names == ["sport", "tech"]
    np.testing.assert_array_equal(ds.targets, [[1, 1], [0, 1]])
    assert ds.unlabeled == ["third"]


def test_csv_without_a_separator_says_which_option(tmp_path: Path) -> None:
    path = tmp_path / "a.csv"
    path.write_text("text,label\nfirst,sport|tech\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"set data.label_separator"):
        load_multilabel_file(path)


def test_every_bad_row_is_reported_at_once(tmp_path: Path) -> None:
    path = _jsonl(
        tmp_path / "bad.jsonl",
        [
            {"text": "ok", "label": ["a", "b"]},
            {"text": "empty list", "label": []},
            {"text": "unknown", "label": ["a", "zzz"]},
            {"text": "not a label", "label": [{"x": 1}]},
            {"text": "ok", "label": ["a"]},  # the first text again, with another set
        ],
    )
    with pytest.raises(DataProblemsError) as info:
        load_multilabel_file(path, label_names=["a", "b"])
    assert info.value.counts == {
        "bad_row": 1,
        "unknown_label": 1,
        "empty_label_set": 1,
        "conflict": 1,
    }
    assert "row 2 has an empty label list" in str(info.value)
    assert "'zzz', which is not in the schema" in str(info.value)


def test_empty_part_between_separators_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "a.tsv"
    path.write_text("text\tlabel\nfirst\tsport||tech\nsecond\ttech\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"row 2 has an empty label between separators"):
        load_multilabel_file(path, label_separator="|")


def test_builtins_refuse_the_wrong_mode() -> None:
    with pytest.raises(DataError, match="one label per text; multi-label built-ins: bbc_pairs"):
        load_multilabel_dataset("rotten_tomatoes")
    from tinystudent.data import load_dataset

    with pytest.raises(DataError, match="is multi-label: set data.multi_label: true"):
        load_dataset("bbc_pairs")
