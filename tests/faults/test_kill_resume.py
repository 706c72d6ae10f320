"""SIGKILL a real pipeline inside each long stage, rerun it, and get the uninterrupted result.

One run is killed three times in a row: while the teacher trains, while the teacher labels,
while the student trains; a fourth invocation finishes it. The reference run (same recipe,
never interrupted, another PYTHONHASHSEED) runs alongside; tests/faults/runs.py starts it.
Stages are detected by the files they write (a checkpoint, a cache shard);
`TINYSTUDENT_SLOW_STEP_SECONDS` stretches each step so the kill lands inside the stage
(sleeping changes no number the run computes).
"""

from __future__ import annotations

import json
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from safetensors.torch import load_file

from tests.faults.runs import BackgroundRun, start_run, wait_ok

STEP = {"TINYSTUDENT_SLOW_STEP_SECONDS": "0.04"}


def kill_when(
    proc: subprocess.Popen[bytes], ready: Callable[[], bool], timeout: float = 60
) -> None:
    """SIGKILL `proc` as soon as `ready()` holds; fail if it exits first."""
    deadline = time.monotonic() + timeout
    while not ready():
        if proc.poll() is not None:
            _, err = proc.communicate()
            pytest.fail(f"run ended (rc={proc.returncode}) before the kill: {err.decode()[-2000:]}")
        if time.monotonic() > deadline:
            proc.kill()
            pytest.fail("stage never started")
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.communicate()
    assert proc.returncode == -signal.SIGKILL


def shards(out: Path) -> dict[str, int]:
    """Cache shards by name, with their modification times (recomputing would change them)."""
    return {p.name: p.stat().st_mtime_ns for p in (out / "cache").rglob("shard-*.safetensors")}


def test_killed_in_every_stage_resumes_to_the_uninterrupted_result(
    fault_recipe_path: Path, reference_run: BackgroundRun, tmp_path: Path
) -> None:
    out = tmp_path / "killed"

    def launch() -> subprocess.Popen[bytes]:
        return start_run(fault_recipe_path, out, **STEP)

    # 1. Killed while the teacher trains, after at least one epoch was checkpointed.
    kill_when(launch(), lambda: (out / "teacher.ckpt" / "state.json").exists())
    assert not (out / "teacher" / "teacher.json").exists(), "kill landed after the teacher stage"

    # 2. Resumes the teacher, then is killed while labeling, after some shards were written.
    kill_when(launch(), lambda: len(shards(out)) >= 2)
    teacher_log = json.loads((out / "teacher" / "train_log.json").read_text())
    assert teacher_log["resumed_from_epoch"] >= 1  # finished epochs were not redone
    assert not (out / "teacher.ckpt").exists()  # dropped once the teacher was saved
    assert not (out / "student.ckpt").exists(), "kill landed after labeling"
    labeled_before = shards(out)  # checked against the full count below

    # 3. Reuses the shards, finishes labeling, is killed while the student trains.
    kill_when(launch(), lambda: (out / "student.ckpt" / "state.json").exists())
    assert not (out / "student" / "student.json").exists(), "kill landed after the student"
    after = shards(out)
    assert all(after.get(name) == t for name, t in labeled_before.items())  # kept, untouched

    # 4. Finishes.
    wait_ok(launch())
    ref_out = reference_run.wait()
    report = json.loads((out / "report.json").read_text())
    ref = json.loads((ref_out / "report.json").read_text())
    assert report["stages"] == {
        "data": "skipped",
        "teacher": "skipped",
        "label": "skipped",
        "student": "ran",
    }
    assert report["training"]["resumed_from_epoch"] >= 1
    assert len(labeled_before) < len(shards(ref_out)), "kill landed after labeling"
    assert len(shards(out)) == len(shards(ref_out))  # no text was labeled twice
    assert not (out / "student.ckpt").exists()
    assert not [p for p in out.rglob("*.tmp") if "cache" not in p.parts]

    # The interrupted run ends exactly where the uninterrupted one does.
    for system in ("teacher", "student"):
        for metric in ("accuracy", "macro_f1", "params", "size_bytes"):
            assert report[system][metric] == ref[system][metric], (system, metric)
    assert report["student"]["agreement_with_teacher"] == ref["student"]["agreement_with_teacher"]
    for key in ("history", "best_epoch", "best_val_agreement"):
        assert report["training"][key] == ref["training"][key], key
    for rel in ("student/student.safetensors", "teacher/teacher.safetensors"):
        got, want = load_file(str(out / rel)), load_file(str(ref_out / rel))
        assert got.keys() == want.keys()
        for name in want:
            assert got[name].numpy().tobytes() == want[name].numpy().tobytes(), (rel, name)
