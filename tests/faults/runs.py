"""Real pipeline runs in subprocesses, shared by the crash and determinism tests.

A subprocess is the only honest way to test a SIGKILL, and the only way to vary
PYTHONHASHSEED. The uninterrupted reference run starts in the background the first time a
test asks for it and is shared by the session (a run costs ~6 CPU-seconds on this machine).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import yaml

SLOW_STEP_ENV = "TINYSTUDENT_SLOW_STEP_SECONDS"


def fault_recipe(toy_csv: Path, teacher_dir: Path) -> dict:
    """Tiny, but with enough steps per stage for a kill to land inside each one."""
    return {
        "name": "faults",
        "data": {"dataset": str(toy_csv), "k": 8, "test_size": 40},
        # 4 steps per epoch: the teacher stage lasts 24 steps
        "teacher": {"model": str(teacher_dir), "epochs": 6, "batch_size": 4, "lr": 2e-3},
        "label": {"shard_size": 16},  # ~16 shards, one labeling call each
        "student": {"kind": "pqrnn", "hidden": 16, "bottleneck": 32, "features": 64},
        "train": {"epochs": 4, "batch_size": 16, "patience": 4, "seed": 5},  # 12 steps/epoch
    }


def write_recipe(path: Path, recipe: dict) -> Path:
    path.write_text(yaml.safe_dump(recipe))
    return path


def start_run(recipe: Path, out: Path, **env: str) -> subprocess.Popen[bytes]:
    """`python -m tinystudent run` on one torch thread (see conftest.py), quiet, offline."""
    full_env = {
        **os.environ,
        "TQDM_DISABLE": "1",
        "HF_HUB_OFFLINE": "1",
        "OMP_NUM_THREADS": "1",
        **env,
    }
    if SLOW_STEP_ENV not in env:
        full_env.pop(SLOW_STEP_ENV, None)
    cmd = [sys.executable, "-m", "tinystudent", "run", str(recipe), "--out", str(out)]
    return subprocess.Popen(cmd, env=full_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def wait_ok(proc: subprocess.Popen[bytes], timeout: float = 300) -> None:
    _, err = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, err.decode(errors="replace")[-3000:]


class BackgroundRun:
    """A run started now and awaited later, so its wall time overlaps other work."""

    def __init__(self, recipe: Path, out: Path, **env: str) -> None:
        self.out = out
        self.proc = start_run(recipe, out, **env)

    def wait(self) -> Path:
        if self.proc.returncode is None:
            wait_ok(self.proc)
        assert self.proc.returncode == 0
        return self.out

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.communicate()
