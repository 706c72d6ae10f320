"""A file with 46 conflicting texts through `tinystudent run`: one error naming the count, and
`data.on_conflict: drop` runs it, with what it dropped in the report."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.data.test_problems import conflicted_csv
from tests.faults.test_bad_input import cli_run, recipe_for, write_recipe


def test_conflicts_stop_the_run_with_one_line(
    tmp_path: Path, tiny_teacher_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = conflicted_csv(tmp_path / "tweets.csv")
    recipe = write_recipe(tmp_path / "r.yaml", recipe_for(data, tiny_teacher_dir))
    rc, err = cli_run(recipe, tmp_path / "out", capsys)
    lines = err.strip().splitlines()
    assert rc == 2 and len(lines) == 1, err
    assert "46 texts with conflicting labels" in lines[0] and str(data) in lines[0]
    assert not (tmp_path / "out" / "teacher").exists()


def test_on_conflict_drop_runs_and_reports_the_rows(
    tmp_path: Path, tiny_teacher_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = conflicted_csv(tmp_path / "tweets.csv")
    spec = recipe_for(data, tiny_teacher_dir, on_conflict="drop", max_pool=40)
    recipe = write_recipe(tmp_path / "r.yaml", spec)
    rc, err = cli_run(recipe, tmp_path / "out", capsys)
    assert rc == 0, err
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    assert report["data_cleaning"]["conflicting_texts"] == 46
    assert report["data_cleaning"]["conflict_rows_dropped"] == 92
    md = (tmp_path / "out" / "report.md").read_text()
    assert "46 texts had conflicting labels; data.on_conflict: drop removed 92 rows" in md
