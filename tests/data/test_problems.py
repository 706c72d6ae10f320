"""Data problems come back all at once, counted by kind; `on_conflict` resolves repeats."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import toy_rows
from tinystudent.data import DataProblemsError, load_dataset, load_file


def conflicted_csv(path: Path, n_rows: int = 2000, n_conflicts: int = 46) -> Path:
    """`n_rows` distinct reviews, then `n_conflicts` of them repeated with the other label and
    one repeated with the same label (a harmless duplicate)."""
    rows = toy_rows(n_rows)
    flip = {"pos": "neg", "neg": "pos"}
    extra = [(t, flip[y]) for t, y in rows[10 : 10 + 2 * n_conflicts : 2]] + [rows[1]]
    lines = ["text,label"] + [f"{t},{y}" for t, y in rows + extra]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_46_conflicts_are_one_error_naming_the_count(tmp_path: Path) -> None:
    p = conflicted_csv(tmp_path / "tweets.csv")
    with pytest.raises(DataProblemsError) as e:
        load_file(p)
    msg = str(e.value)
    assert "\n" not in msg and msg.startswith(str(p))
    assert "46 texts with conflicting labels" in msg
    assert e.value.counts == {"conflict": 46}
    # the first three are shown by file row (the first repeat is file row 2002, of row 12)
    assert "row 2002 repeats the text of row 12" in msg and "43 more" in msg
    assert len(e.value.examples["conflict"]) == 3
    assert "data.on_conflict" in msg


def test_every_kind_is_counted_in_one_error(tmp_path: Path) -> None:
    body = "text,label\n" + "".join(f"{t},{y}\n" for t, y in toy_rows(20))
    body += ",pos\n  ,neg\n"  # two empty texts (rows 22, 23)
    body += "so-so,neutral\n"  # an unknown label (row 24)
    body += "a,pos,extra\n"  # a bad row (row 25)
    body += "same,pos\nsame,neg\nother,neg\nother,pos\n"  # two conflicts (rows 26..29)
    p = tmp_path / "mixed.csv"
    p.write_text(body, encoding="utf-8")
    with pytest.raises(DataProblemsError) as e:
        load_file(p, label_names=["neg", "pos"])
    assert e.value.counts == {"bad_row": 1, "empty_text": 2, "unknown_label": 1, "conflict": 2}
    msg = str(e.value)
    assert "6 problems" in msg
    for fragment in (
        "1 bad row [row 25 has more cells",
        "2 empty texts [row 22 has an empty text",
        "row 23",
        "1 unknown label [row 24 has label 'neutral'",
        "2 texts with conflicting labels [row 27 repeats the text of row 26",
        "row 29 repeats the text of row 28",
    ):
        assert fragment in msg, fragment


def test_jsonl_bad_lines_are_all_reported(tmp_path: Path) -> None:
    rows = [{"text": t, "label": y} for t, y in toy_rows(10)]
    lines = [json.dumps(r) for r in rows] + ["{broken", "[1, 2]", '{"text": 5, "label": "pos"}']
    p = tmp_path / "x.jsonl"
    p.write_text("\n".join(lines) + "\n", encoding="utf-8")
    with pytest.raises(DataProblemsError) as e:
        load_dataset(str(p))
    assert e.value.counts == {"bad_row": 3}
    for fragment in ("line 11 is not valid JSON", "line 12 is not a JSON object", "row 13"):
        assert fragment in str(e.value)


def test_on_conflict_drop_removes_every_row_of_a_conflicting_text(tmp_path: Path) -> None:
    p = conflicted_csv(tmp_path / "tweets.csv")
    ds = load_file(p, on_conflict="drop")
    rows = toy_rows(2000)
    conflicted = {t for t, _ in rows[10 : 10 + 2 * 46 : 2]}
    assert not conflicted & set(ds.texts)
    assert len(ds.texts) == 2000 - 46
    assert ds.cleaning == {
        "on_conflict": "drop",
        "conflicting_texts": 46,
        "conflict_rows_dropped": 92,
        "duplicate_rows_dropped": 1,
    }


def test_on_conflict_majority_keeps_the_most_frequent_label(tmp_path: Path) -> None:
    body = "text,label\nx,pos\nx,neg\nx,pos\ntie,pos\ntie,neg\nfine,neg\nalso fine,pos\n"
    p = tmp_path / "m.csv"
    p.write_text(body, encoding="utf-8")
    ds = load_file(p, on_conflict="majority")
    got = {t: ds.label_names[y] for t, y in zip(ds.texts, ds.labels)}
    assert got == {"x": "pos", "fine": "neg", "also fine": "pos"}  # the tie is dropped
    assert ds.cleaning["conflicting_texts"] == 2
    assert ds.cleaning["conflict_texts_tied"] == 1
    assert ds.cleaning["conflict_rows_dropped"] == 3  # x's 'neg' row and both 'tie' rows


def test_on_conflict_does_not_hide_other_problems(tmp_path: Path) -> None:
    p = tmp_path / "e.csv"
    p.write_text("text,label\na,pos\na,neg\nb,neg\nc,pos\n,pos\n", encoding="utf-8")
    with pytest.raises(DataProblemsError) as e:
        load_file(p, on_conflict="drop")
    assert e.value.counts == {"empty_text": 1}
