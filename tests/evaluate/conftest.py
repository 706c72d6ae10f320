"""The synthetic run directory of tests/run_pages.py as a fixture."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.run_pages import make_run_dir


@pytest.fixture
def synthetic_run(tmp_path: Path) -> Path:
    return make_run_dir(tmp_path)
