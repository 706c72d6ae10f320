"""End to end on a tiny random teacher: artifacts, the report, resume, and the CLI.

The second run must skip every finished stage and hit the soft-label cache for every text.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tinystudent.cli import main
from tinystudent.pipeline import run
from tinystudent.recipe import parse_recipe


@pytest.fixture(scope="module")
def recipe(toy_csv: Path, tiny_teacher_dir: Path):
    return parse_recipe(
        {
            "name": "toy",
            "data": {"dataset": str(toy_csv), "k": 8, "test_size": 40},
            "teacher": {"model": str(tiny_teacher_dir), "epochs": 6, "lr": 2e-3},
            "student": {"kind": "pqrnn", "hidden": 16, "bottleneck": 32, "features": 64},
            "train": {"epochs": 3, "batch_size": 32},
            "label": {"shard_size": 64},
        }
    )


@pytest.fixture(scope="module")
def finished_run(recipe, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("run")
    return out, run(recipe, out)


def test_artifacts_and_report(finished_run: tuple[Path, dict]) -> None:
    out, report = finished_run
    for rel in [
        "report.json",
        "report.md",
        "report.html",
        "predictions.json",
        "recipe.json",
        "stages.json",
        "data/split.json",
        "teacher/teacher.safetensors",
        "teacher/teacher.json",
        "student/student.safetensors",
        "student/student.json",
        "student/train_log.json",
    ]:
        assert (out / rel).is_file(), rel
    saved = json.loads((out / "report.json").read_text())
    assert saved["teacher"]["accuracy"] == report["teacher"]["accuracy"]
    for key in ["accuracy", "params", "macro_f1", "size_bytes"]:
        assert key in saved["teacher"] and key in saved["student"]
    assert saved["student"]["name"] == "pqrnn"
    assert (saved["dataset"], saved["k"], saved["seed"]) == (report["dataset"], 8, 0)
    assert saved["stages"] == {"data": "ran", "teacher": "ran", "label": "ran", "student": "ran"}
    assert saved["student"]["params"] < saved["teacher"]["params"]
    assert "| teacher |" in (out / "report.md").read_text()
    assert not list(out.rglob("*.tmp"))  # atomic writes leave no temp files


def test_report_page_is_drawn_from_the_runs_own_predictions(
    finished_run: tuple[Path, dict],
) -> None:
    """predictions.json holds the test split as the report scored it; the page shows it."""
    import numpy as np

    from tinystudent.evaluate import classification_metrics
    from tinystudent.evaluate.predictions import load_predictions

    out, report = finished_run
    preds = load_predictions(out)
    assert preds is not None and len(preds.texts) == report["test_size"] == 40
    split = json.loads((out / "data" / "split.json").read_text())
    assert preds.texts == split["test_texts"] and preds.labels == split["test_labels"]
    for role, probs in (("teacher", preds.teacher), ("student", preds.student)):
        assert classification_metrics(preds.labels, probs)["accuracy"] == report[role]["accuracy"]
    agree = float((preds.student.argmax(1) == preds.teacher.argmax(1)).mean())
    assert agree == report["student"]["agreement_with_teacher"]
    assert np.allclose(preds.teacher.sum(1), 1, atol=1e-4)
    page = (out / "report.html").read_text(encoding="utf-8")
    assert "<td>teacher</td>" in page and page.count('<img src="data:image/png;base64,') == 4
    assert "https://" not in page and "http://" not in page
    # the CLI rebuilds it from the run directory alone, here with 3 disagreements
    (out / "report.html").unlink()
    assert main(["report", str(out), "--top", "3"]) == 0
    page = (out / "report.html").read_text(encoding="utf-8")
    assert page.count('<td class="text">') == 3 and "<td>student (distilled)</td>" in page


def test_rerun_skips_finished_stages(recipe, finished_run: tuple[Path, dict]) -> None:
    out, first = finished_run
    shards = sorted(p.name for p in (out / "cache").rglob("shard-*"))
    again = run(recipe, out)
    assert again["stages"] == {
        "data": "skipped",
        "teacher": "skipped",
        "label": "skipped",
        "student": "skipped",
    }
    assert again["labeling"]["transfer"]["computed"] == 0
    assert again["labeling"]["transfer"]["hits"] == first["transfer_size"]
    assert sorted(p.name for p in (out / "cache").rglob("shard-*")) == shards
    assert again["student"]["accuracy"] == first["student"]["accuracy"]


def test_changed_student_section_retrains_only_the_student(recipe, finished_run, tmp_path):
    out, _ = finished_run
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(out, copy)
    changed = recipe.model_copy(deep=True)
    changed.train.epochs = 2
    report = run(changed, copy)
    assert report["stages"] == {
        "data": "skipped",
        "teacher": "skipped",
        "label": "skipped",
        "student": "ran",
    }


def test_cli_predict(finished_run: tuple[Path, dict], capsys: pytest.CaptureFixture) -> None:
    out, _ = finished_run
    assert main(["predict", str(out), "a great film", "an awful film", "--json"]) == 0
    lines = [json.loads(x) for x in capsys.readouterr().out.strip().splitlines()]
    assert [x["text"] for x in lines] == ["a great film", "an awful film"]
    assert all(x["label"] in ("neg", "pos") for x in lines)
    assert all(abs(sum(x["probs"].values()) - 1) < 1e-4 for x in lines)


def test_cli_errors_are_one_line(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["predict", str(tmp_path), "text"]) == 2
    assert "no student.json" in capsys.readouterr().err
    bad = tmp_path / "r.yaml"
    bad.write_text("data: {k: 0}\n")
    assert main(["run", str(bad)]) == 2
    assert "data.k" in capsys.readouterr().err
