"""File loaders: every format loads, and every bad input names the file and the row."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tinystudent.data import load_dataset
from tinystudent.data.files import load_file
from tinystudent.errors import DataError


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def test_csv_jsonl_parquet_agree(tmp_path: Path) -> None:
    rows = [
        {"text": "good film", "label": "pos"},
        {"text": "bad film", "label": "neg"},
        {"text": "more text", "label": ""},
    ]
    csv_path = write(
        tmp_path / "a.csv", "text,label\n" + "".join(f"{r['text']},{r['label']}\n" for r in rows)
    )
    jsonl_path = write(tmp_path / "a.jsonl", "".join(json.dumps(r) + "\n" for r in rows))
    pa = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq

    pq_path = tmp_path / "a.parquet"
    pq.write_table(pa.Table.from_pylist(rows), pq_path)
    loaded = [load_file(p) for p in (csv_path, jsonl_path, pq_path)]
    for ds in loaded:
        assert ds.texts == ["good film", "bad film"]
        assert ds.label_names == ["neg", "pos"]
        assert ds.labels == [1, 0]
        assert ds.unlabeled == ["more text"]  # an empty label means unlabeled pool text


def test_custom_columns(tmp_path: Path) -> None:
    p = write(tmp_path / "b.csv", "review,stars\nnice,5\nawful,1\n")
    ds = load_dataset(str(p), text_column="review", label_column="stars")
    assert ds.label_names == ["1", "5"] and ds.texts == ["nice", "awful"]


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("empty.csv", "", "the file is empty"),
        ("bad.jsonl", '{"text": "a", "label": "x"}\n{not json\n', "line 2 is not valid JSON"),
        ("list.jsonl", '["a", "b"]\n', "line 1 is not a JSON object"),
        ("nocol.csv", "body,label\nhello,pos\n", "no column 'text'"),
        ("nolabel.csv", "text,tag\nhello,pos\n", "no column 'label'"),
        ("blank.csv", "text,label\n   ,pos\n", "row 2 has an empty text"),
        ("extra.csv", "text,label\na,pos,zzz\n", "more cells than the header"),
        ("onlyunlabeled.csv", "text,label\na,\n", "no labeled rows"),
        ("oneclass.csv", "text,label\na,pos\nb,pos\n", "only one class"),
        ("data.xlsx", "whatever", "unknown format"),
    ],
)
def test_bad_files_name_the_problem(tmp_path: Path, name: str, content: str, message: str) -> None:
    p = write(tmp_path / name, content)
    with pytest.raises(DataError, match=message) as e:
        load_file(p)
    assert str(p) in str(e.value)


def test_missing_file_and_directory(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="no such file"):
        load_file(tmp_path / "nope.csv")
    with pytest.raises(DataError, match="is a directory"):
        load_file(tmp_path)


def test_non_utf8_is_reported(tmp_path: Path) -> None:
    p = tmp_path / "latin.csv"
    p.write_bytes("text,label\ncaf\xe9,pos\n".encode("latin-1"))
    with pytest.raises(DataError, match="not valid UTF-8"):
        load_file(p)


def test_label_outside_schema(tmp_path: Path) -> None:
    p = write(tmp_path / "c.csv", "text,label\na,pos\nb,neutral\n")
    with pytest.raises(DataError, match="'neutral'.*not in the schema"):
        load_file(p, label_names=["neg", "pos"])


def test_duplicate_texts_are_dropped(tmp_path: Path) -> None:
    p = write(tmp_path / "d.csv", "text,label\na,pos\nb,neg\na,pos\n")
    assert load_file(p).texts == ["a", "b"]


def test_unknown_source_is_explained() -> None:
    with pytest.raises(DataError, match="neither built in"):
        load_dataset("no_such_dataset")
