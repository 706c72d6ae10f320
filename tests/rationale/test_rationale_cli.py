"""`tinystudent rationale RECIPE.yaml` end to end on a tiny random LM, offline, and resumable."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from tests.rationale.conftest import recipe_file, toy_problems, write_jsonl
from tinystudent.cli import main
from tinystudent.errors import RecipeError
from tinystudent.rationale.recipe import load_rationale_recipe, parse_rationale_recipe


def test_cli_runs_end_to_end_and_reruns_without_retraining(
    tmp_path: Path, tiny_lm_dir: Path, capsys
):
    recipe = recipe_file(tmp_path, tiny_lm_dir)
    out = tmp_path / "run"
    assert main(["rationale", str(recipe), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "| multitask |" in printed and "| untrained |" in printed
    for name in (
        "report.json",
        "report.md",
        "predictions.jsonl",
        "baseline.json",
        "rationales.jsonl",
        "student/model.safetensors",
        "student/tokenizer.json",
    ):
        assert (out / name).is_file(), name
    assert not (out / "checkpoint").exists()  # cleared once the student is saved
    assert not list((out / "student").glob("*.bin")) and not list(out.glob("**/*.pt"))
    report = json.loads((out / "report.json").read_text())
    assert report["train"]["steps"] == 4 and report["budget"]["num_examples"] == 16
    assert report["rationales"]["stats"]["kept"] == 16
    assert report["student_result"]["total"] == 6
    assert len((out / "predictions.jsonl").read_text().splitlines()) == 6

    assert (out / "student" / "model.safetensors").stat().st_mode & 0o044 == 0o044  # shareable
    weights = (out / "student" / "model.safetensors").stat().st_mtime_ns
    assert main(["rationale", str(recipe), "--out", str(out)]) == 0
    assert (out / "student" / "model.safetensors").stat().st_mtime_ns == weights
    again = json.loads((out / "report.json").read_text())
    timing = "seconds_per_answer"
    assert {k: v for k, v in again["student_result"].items() if k != timing} == {
        k: v for k, v in report["student_result"].items() if k != timing
    }


@pytest.mark.parametrize("mode", ["answer", "cot"])
def test_other_modes_run(tmp_path: Path, tiny_lm_dir: Path, mode: str):
    recipe = recipe_file(tmp_path, tiny_lm_dir, mode=mode, steps=2)
    out = tmp_path / mode
    assert main(["rationale", str(recipe), "--out", str(out)]) == 0
    report = json.loads((out / "report.json").read_text())
    assert report["mode"] == mode
    want_tokens = 12 if mode == "cot" else 4
    assert report["student_result"]["max_new_tokens"] == want_tokens


def test_bad_recipe_key_is_named(tmp_path: Path, capsys):
    path = tmp_path / "bad.yaml"
    path.write_text("train:\n  mode: cot\n  stepz: 3\n", encoding="utf-8")
    assert main(["rationale", str(path)]) == 2
    assert "train.stepz: unknown key" in capsys.readouterr().err


def test_recipe_errors():
    with pytest.raises(RecipeError, match="train.mode"):
        parse_rationale_recipe({"train": {"mode": "essay"}})
    with pytest.raises(RecipeError, match="train.label_weight"):
        parse_rationale_recipe({"train": {"label_weight": 1.5}})
    with pytest.raises(RecipeError, match="train_path and test_path"):
        parse_rationale_recipe({"data": {"source": "jsonl"}})
    with pytest.raises(RecipeError, match="rationales.instruction"):
        parse_rationale_recipe({"rationales": {"instruction": "no placeholder"}})
    with pytest.raises(RecipeError, match="a mapping"):
        parse_rationale_recipe([1, 2])
    with pytest.raises(RecipeError, match="no such recipe"):
        load_rationale_recipe("/nonexistent/recipe.yaml")


def test_missing_data_and_student_are_clear(tmp_path: Path, tiny_lm_dir: Path, capsys):
    recipe = recipe_file(tmp_path, tiny_lm_dir)
    data = yaml.safe_load(recipe.read_text())
    data["data"]["train_path"] = str(tmp_path / "absent.jsonl")
    recipe.write_text(yaml.safe_dump(data))
    assert main(["rationale", str(recipe), "--out", str(tmp_path / "o")]) == 2
    assert "absent.jsonl: no such file" in capsys.readouterr().err

    data = yaml.safe_load(recipe_file(tmp_path, tiny_lm_dir).read_text())
    data["student"]["model"] = str(tmp_path / "no-model")
    recipe.write_text(yaml.safe_dump(data))
    assert main(["rationale", str(recipe), "--out", str(tmp_path / "o2")]) == 2
    assert "student.model" in capsys.readouterr().err


def test_answer_only_data_cannot_train_rationale_modes(tmp_path: Path, tiny_lm_dir: Path, capsys):
    recipe = recipe_file(tmp_path, tiny_lm_dir)
    write_jsonl(tmp_path / "train.jsonl", toy_problems(24), with_rationale=False)
    assert main(["rationale", str(recipe), "--out", str(tmp_path / "o")]) == 2
    assert "no rationale was kept" in capsys.readouterr().err


def test_shipped_recipe_is_valid():
    root = Path(__file__).resolve().parents[2]
    for path in sorted((root / "recipes").glob("rationale_*.yaml")):
        load_rationale_recipe(path)
