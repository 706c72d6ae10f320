"""Data: the gsm_symbolic split is seeded and its held-out set never meets training;
JSONL files load with clear errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.rationale.conftest import toy_problems, write_jsonl
from tinystudent.errors import DataError
from tinystudent.rationale.data import (
    Example,
    drop_overlap,
    gsm_scorer,
    gsm_split,
    load_jsonl,
    number_match,
    save_jsonl,
    strip_final_answer,
)

pytest.importorskip("reasoning_gym")


def test_gsm_split_is_seeded_and_disjoint():
    train, test = gsm_split(60, 40, seed=3)
    again_train, again_test = gsm_split(60, 40, seed=3)
    assert (train, test) == (again_train, again_test)
    assert len(train) == 60 and len(test) == 40
    assert not {e.question for e in train} & {e.question for e in test}
    assert not {e.id for e in train} & {e.id for e in test}
    other_train, other_test = gsm_split(60, 40, seed=4)
    assert [e.question for e in other_train] != [e.question for e in train]
    assert [e.question for e in other_test] != [e.question for e in test]


def test_held_out_set_does_not_depend_on_training_size():
    _, small = gsm_split(5, 30, seed=0)
    _, large = gsm_split(200, 30, seed=0)
    assert small == large


def test_gsm_rationale_has_no_final_answer_line_and_scorer_is_the_datasets():
    train, _ = gsm_split(10, 1, seed=0)
    score = gsm_scorer()
    for e in train:
        assert e.rationale and "####" not in e.rationale
        assert score(e.answer, e)
        assert score(f"{e.answer} apples", e)
        assert not score(str(int(float(e.answer)) + 1), e)


def test_strip_final_answer():
    assert strip_final_answer("a\nb=3\n#### 3") == "a\nb=3"
    assert strip_final_answer("no marker") == "no marker"


def test_number_match():
    ex = Example("x", "q", "1,200")
    assert number_match("1200", ex) and number_match("1,200 dollars", ex)
    assert not number_match("120", ex) and not number_match("none", ex)
    assert number_match(" Paris ", Example("y", "q", "paris"))


def test_jsonl_round_trip_and_overlap(tmp_path: Path):
    rows = toy_problems(6)
    path = tmp_path / "train.jsonl"
    save_jsonl(path, rows)
    assert load_jsonl(path) == rows
    assert drop_overlap(rows, rows[:2]) == rows[2:]


def test_jsonl_without_rationale_column(tmp_path: Path):
    path = write_jsonl(tmp_path / "a.jsonl", toy_problems(3), with_rationale=False)
    assert all(e.rationale is None for e in load_jsonl(path))


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("", "no rows"),
        ("\n\n", "no rows"),
        ('{"question": "q"}\n', "missing column answer"),
        ("[1, 2]\n", "expected a JSON object"),
        ("{bad json\n", "not valid JSON"),
    ],
)
def test_jsonl_errors_name_the_problem(tmp_path: Path, content: str, message: str):
    path = tmp_path / "bad.jsonl"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(DataError, match=message):
        load_jsonl(path)


def test_jsonl_missing_file(tmp_path: Path):
    with pytest.raises(DataError, match="no such file"):
        load_jsonl(tmp_path / "absent.jsonl")


def test_jsonl_numbers_become_strings(tmp_path: Path):
    path = tmp_path / "n.jsonl"
    path.write_text(json.dumps({"question": "1+1?", "answer": 2}) + "\n", encoding="utf-8")
    assert load_jsonl(path)[0].answer == "2"
