"""A recipe's pinned `threads` decides the run's numerics, not the machine's thread setting.

Torch splits float sums across its intra-op threads, so the same run on another core count
moves in the last bits (enough to move a student's accuracy by points). With `threads` set,
the run pins torch for its whole length and restores the caller's setting afterwards.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from tinystudent.cli import main
from tinystudent.pipeline import run
from tinystudent.recipe import default_recipe, parse_recipe


def _recipe(toy_csv: Path, tiny_teacher_dir: Path, threads: int | None) -> dict:
    return {
        "name": "pinned",
        "data": {"dataset": str(toy_csv), "k": 8, "test_size": 40},
        "teacher": {"model": str(tiny_teacher_dir), "epochs": 2, "lr": 2e-3},
        "student": {"kind": "pqrnn", "hidden": 16, "bottleneck": 32, "features": 64},
        "train": {"epochs": 2, "batch_size": 32},
        "threads": threads,
    }


@pytest.fixture
def restore_threads():
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


def test_a_run_pins_its_threads_and_restores_the_callers(
    toy_csv: Path, tiny_teacher_dir: Path, tmp_path: Path, restore_threads: None
) -> None:
    torch.set_num_threads(3)
    report = run(parse_recipe(_recipe(toy_csv, tiny_teacher_dir, 1)), tmp_path / "a")
    assert report["torch_threads"] == 1
    assert torch.get_num_threads() == 3


def test_pinned_run_gives_the_same_bytes_from_any_starting_thread_count(
    toy_csv: Path, tiny_teacher_dir: Path, tmp_path: Path, restore_threads: None
) -> None:
    weights = []
    for start in (1, 4):
        torch.set_num_threads(start)
        out = tmp_path / f"from{start}"
        run(parse_recipe(_recipe(toy_csv, tiny_teacher_dir, 2)), out)
        weights.append((out / "student/student.safetensors").read_bytes())
    assert weights[0] == weights[1]


def test_threads_flag_and_global_torch_threads_set_the_recipe(
    toy_csv: Path,
    tiny_teacher_dir: Path,
    tmp_path: Path,
    restore_threads: None,
    capsys: pytest.CaptureFixture[str],
) -> None:
    base = ["check", "--data", str(toy_csv), "--teacher", str(tiny_teacher_dir)]
    assert main([*base, "--threads", "3"]) == 0
    assert "threads: 3" in capsys.readouterr().out
    assert main(["--torch-threads", "1", *base]) == 0
    assert "threads: 1" in capsys.readouterr().out
    assert main([*base, "--threads", "0"]) == 2
    assert "--threads" in capsys.readouterr().err


def test_the_demo_pins_two_threads() -> None:
    assert default_recipe().threads == 2
