"""Global CLI options."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from tinystudent.cli import main


def test_torch_threads_sets_torch_before_the_verb_runs(tmp_path: Path) -> None:
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        # The verb fails (no such student), but only after the option took effect.
        assert main(["--torch-threads", "1", "predict", str(tmp_path / "nothing"), "x"]) == 2
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)


def test_torch_threads_below_one_is_a_clear_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--torch-threads", "0", "demo"]) == 2
    assert "--torch-threads must be at least 1" in capsys.readouterr().err
