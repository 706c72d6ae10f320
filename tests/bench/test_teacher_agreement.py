"""bench/teacher_agreement.py: refitting a finished run's teacher reproduces it at the run's
own seed, and the figures are read against the run's predictions."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from tinystudent.errors import TinyStudentError
from tinystudent.pipeline import run
from tinystudent.recipe import parse_recipe

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "bench"))

import teacher_agreement  # noqa: E402


def test_refit_at_the_runs_seed_is_the_runs_teacher(toy_csv: Path, tmp_path: Path) -> None:
    recipe = parse_recipe(
        {
            "name": "toy-agree",
            "data": {"dataset": str(toy_csv), "k": 8, "test_size": 40},
            "teacher": {"kind": "tfidf"},
            "student": {"kind": "bag", "embed_dim": 16, "init": "random", "head_hidden": 0},
            "train": {"epochs": 2, "batch_size": 32},
        }
    )
    report = run(recipe, tmp_path / "run")
    out = tmp_path / "agree.json"
    assert teacher_agreement.main([str(tmp_path / "run"), "--seeds", "0", "--out", str(out)]) == 0
    doc = json.loads(out.read_text())
    (refit,) = doc["refits"]
    assert refit["agreement_with_run_teacher"] == 1.0
    assert refit["accuracy"] == pytest.approx(report["teacher"]["accuracy"])
    assert doc["run_teacher_accuracy"] == pytest.approx(report["teacher"]["accuracy"])
    assert doc["student_agreement_with_run_teacher"] == pytest.approx(
        report["student"]["agreement_with_teacher"]
    )
    assert doc["teacher_self_agreement"]["n"] == 1 and doc["teacher"] == "tfidf"


def test_a_directory_without_predictions_is_refused(tmp_path: Path) -> None:
    with pytest.raises(TinyStudentError, match="no predictions.json"):
        teacher_agreement.measure(tmp_path, [1])
