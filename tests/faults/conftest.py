"""Fault tests run torch on one thread: on a shared, loaded machine two spinning OpenMP threads
make tiny models ~30x slower, and runs compared for equality must use the same thread count.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from tests.faults.runs import BackgroundRun, fault_recipe, write_recipe


@pytest.fixture(autouse=True)
def one_torch_thread() -> Iterator[None]:
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def fault_recipe_path(
    toy_csv: Path, tiny_teacher_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Path:
    path = tmp_path_factory.mktemp("fault_recipe") / "recipe.yaml"
    return write_recipe(path, fault_recipe(toy_csv, tiny_teacher_dir))


@pytest.fixture(scope="session")
def reference_run(
    fault_recipe_path: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[BackgroundRun]:
    """The uninterrupted run of the fault recipe (PYTHONHASHSEED=1), started in background."""
    run = BackgroundRun(
        fault_recipe_path, tmp_path_factory.mktemp("reference") / "run", PYTHONHASHSEED="1"
    )
    yield run
    run.stop()
