"""bench/ablation.py: levers that replace the teacher, and merging result files of several
invocations into one table (no runs: the units are written by hand)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "bench"))

import ablation  # noqa: E402


def unit(dataset: str, seed: int, lever: str, accuracy: float) -> dict:
    return {
        "dataset": dataset,
        "k": 64,
        "seed": seed,
        "student": "bag",
        "lever": lever,
        "teacher_accuracy": 0.9,
        "accuracy": accuracy,
        "pct_of_teacher": 100 * accuracy / 0.9,
        "agreement": 0.8,
        "transfer_size": 10,
    }


def write(path: Path, units: list[dict], command: str, quick: bool = False) -> Path:
    doc = {"units": units, "command": command, "quick": quick, "levers": {}}
    path.write_text(json.dumps(doc))
    return path


def test_merge_adds_units_replaces_repeats_and_keeps_every_command(tmp_path: Path) -> None:
    out = write(tmp_path / "a.json", [unit("rt", 0, "base", 0.7), unit("rt", 1, "base", 0.8)], "A")
    src = write(tmp_path / "b.json", [unit("rt", 1, "base", 0.6), unit("bbc", 0, "base", 0.9)], "B")
    assert ablation.main(["--out", str(out), "--merge", str(src)]) == 0
    doc = json.loads(out.read_text())
    assert doc["command"] == "A; B"
    assert len(doc["units"]) == 3
    rt = next(s for s in doc["summary"] if s["dataset"] == "rt")
    assert rt["seeds"] == [0, 1] and rt["accuracy"]["mean"] == pytest.approx(0.65)
    assert out.with_suffix(".png").is_file()


def test_merge_refuses_smoke_test_results(tmp_path: Path) -> None:
    out = write(tmp_path / "a.json", [], "")
    quick = write(tmp_path / "q.json", [unit("rt", 0, "base", 0.5)], "Q", quick=True)
    with pytest.raises(SystemExit, match="quick"):
        ablation.main(["--out", str(out), "--merge", str(quick)])


def test_teacher_levers_replace_the_datasets_teacher(tmp_path: Path) -> None:
    recipe = ablation.unit_recipe("bbc", 64, 0, "bag", "teacher-tfidf", tmp_path, quick=False)
    assert recipe.teacher.kind == "tfidf"  # type: ignore[union-attr]
    amalgam = ablation.unit_recipe("bbc", 64, 0, "bag", "frozen+tfidf", tmp_path, quick=False)
    assert amalgam.teachers is not None and len(amalgam.teachers) == 2
    base = ablation.unit_recipe("bbc", 64, 0, "bag", "base", tmp_path, quick=False)
    assert base.teacher.max_length == 256  # type: ignore[union-attr]
    assert ablation._command(["--k", "8", "--runs", "/x", "--out=/y.json"]) == (
        "python bench/ablation.py --k 8"
    )
