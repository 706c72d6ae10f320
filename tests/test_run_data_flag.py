"""`tinystudent run --data FILE` needs no recipe; every run directory keeps its resolved
recipe.yaml, and running that file repeats the run: in place every stage is skipped, in a
fresh directory it gives the same student, byte for byte."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from tests.conftest import toy_rows
from tinystudent.cli import main
from tinystudent.recipe import load_recipe

STAGES = ("data", "teacher", "label", "student")


@pytest.fixture(scope="module")
def reviews(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("data") / "reviews.csv"
    with path.open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["review", "sentiment"])
        w.writerows(toy_rows(160))
    return path


@pytest.fixture(scope="module")
def first_run(reviews: Path, tiny_teacher_dir: Path, tmp_path_factory: pytest.TempPathFactory):
    out = tmp_path_factory.mktemp("runs") / "x"
    argv = ["run", "--data", str(reviews), "--text-column", "review"]
    argv += ["--label-column", "sentiment", "--k", "8", "--test-size", "40"]
    argv += ["--teacher", str(tiny_teacher_dir), "--teacher-epochs", "2", "--student", "pqrnn"]
    argv += ["--epochs", "2", "--max-pool", "60", "--out", str(out)]
    assert main(argv) == 0
    return out


def report(out: Path) -> dict:
    return json.loads((out / "report.json").read_text())


def test_run_from_flags_alone(first_run: Path, reviews: Path, tiny_teacher_dir: Path) -> None:
    r = report(first_run)
    assert r["name"] == "reviews" and r["dataset"] == str(reviews) and r["k"] == 8
    assert r["student"]["name"] == "pqrnn" and r["stages"] == dict.fromkeys(STAGES, "ran")
    recipe = load_recipe(first_run / "recipe.yaml")
    assert recipe.data.text_column == "review" and recipe.data.label_column == "sentiment"
    assert recipe.teacher.model == str(tiny_teacher_dir) and recipe.train.epochs == 2
    assert recipe.student.options["features"] == 256  # defaults are written out


def test_rerunning_the_saved_recipe_skips_every_stage(
    first_run: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    before = report(first_run)
    assert main(["run", str(first_run / "recipe.yaml")]) == 0  # no --out: that run, in place
    assert str(first_run) in capsys.readouterr().out
    again = report(first_run)
    assert again["stages"] == dict.fromkeys(STAGES, "skipped")
    assert again["student"]["accuracy"] == before["student"]["accuracy"]


def test_the_saved_recipe_repeats_the_run_elsewhere(first_run: Path, tmp_path: Path) -> None:
    fresh = tmp_path / "again"
    assert main(["run", str(first_run / "recipe.yaml"), "--out", str(fresh)]) == 0
    assert report(fresh)["stages"] == dict.fromkeys(STAGES, "ran")
    for rel in ("data/split.json", "student/student.safetensors"):
        assert (fresh / rel).read_bytes() == (first_run / rel).read_bytes(), rel
    assert report(fresh)["student"]["accuracy"] == report(first_run)["student"]["accuracy"]


def test_flags_override_a_recipe(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    r = tmp_path / "r.yaml"
    r.write_text("name: mine\ndata: {dataset: a.csv, k: 4}\nstudent: {kind: pqrnn, hidden: 8}\n")
    assert main(["check", str(r), "--k", "12", "--student", "cnn"]) == 0
    out = capsys.readouterr().out
    assert "k: 12" in out and "kind: cnn" in out and "hidden: 8" not in out
    assert "name: mine" in out
