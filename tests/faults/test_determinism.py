"""Same recipe and seed, same bytes: two CPU runs in separate processes (with different hash
seeds, so set iteration order differs) write identical teacher and student tensors.

Every student kind is also trained twice in process, once through a crash and resume, to the
same bytes; a different seed must give different weights, or the test would prove nothing.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from safetensors.torch import load_file

from tests.faults.runs import BackgroundRun, start_run, wait_ok
from tests.tiny_students import KINDS, LABELS, TINY, synthetic
from tinystudent.seed import seed_everything
from tinystudent.students import build_student
from tinystudent.train import engine
from tinystudent.train.loop import TrainConfig, train_student


def tensor_bytes(path: Path) -> dict[str, bytes]:
    return {k: v.numpy().tobytes() for k, v in load_file(str(path)).items()}


def test_two_runs_write_identical_weights(
    fault_recipe_path: Path, reference_run: BackgroundRun, tmp_path: Path
) -> None:
    """The shared reference run (PYTHONHASHSEED=1) against a second one (PYTHONHASHSEED=2)."""
    second = start_run(fault_recipe_path, tmp_path / "run", PYTHONHASHSEED="2")
    wait_ok(second)
    a, b = reference_run.wait(), tmp_path / "run"
    for rel in ("teacher/teacher.safetensors", "student/student.safetensors"):
        assert tensor_bytes(a / rel) == tensor_bytes(b / rel), rel
    ra, rb = (json.loads((d / "report.json").read_text()) for d in (a, b))
    for system in ("teacher", "student"):
        for metric in ("accuracy", "macro_f1"):
            assert ra[system][metric] == rb[system][metric]
    assert ra["training"]["history"] == rb["training"]["history"]
    assert (a / "data" / "split.json").read_bytes() == (b / "data" / "split.json").read_bytes()


def _train(
    kind: str, options: dict[str, object], seed: int, ckpt: Path | None = None
) -> tuple[dict[str, bytes], int]:
    """Final weights as bytes, and how many epochs were resumed from `ckpt`."""
    texts, labels = synthetic(96, seed=2)
    probs = np.array([[0.8, 0.2] if y == 0 else [0.3, 0.7] for y in labels], dtype=np.float32)
    seed_everything(seed)
    student = build_student(kind, options, LABELS)
    cfg = TrainConfig(epochs=3, batch_size=16, patience=3, seed=seed)
    result = train_student(student, texts, probs, None, cfg, checkpoint_dir=ckpt)
    weights = {k: v.numpy().tobytes() for k, v in student.state_dict().items()}
    return weights, result.resumed_from_epoch


class Crash(Exception):
    pass


CASES = [pytest.param(kind, TINY[kind], id=kind) for kind in KINDS if kind != "transformer"]
CASES += [
    pytest.param("transformer", "teacher", id="transformer"),  # options filled in below
    pytest.param("transformer", TINY["transformer"], id="transformer-trained-tokenizer"),
]


@pytest.mark.parametrize(("kind", "options"), CASES)
def test_every_student_kind_is_deterministic_and_resumable(
    kind: str,
    options: dict[str, object] | str,
    tiny_teacher_dir: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    if options == "teacher":  # the tiny teacher's own WordPiece vocabulary
        options = {**TINY["transformer"], "tokenizer": "teacher"}
        options["teacher_model"] = str(tiny_teacher_dir)
        del options["vocab_size"]
    assert isinstance(options, dict)
    first, _ = _train(kind, options, seed=0)
    assert _train(kind, options, seed=0)[0] == first
    assert _train(kind, options, seed=1)[0] != first

    steps = {"n": 0}

    def crash_in_second_epoch() -> None:
        steps["n"] += 1
        if steps["n"] == 8:  # 6 steps per epoch
            raise Crash

    monkeypatch.setattr(engine, "slow_step", crash_in_second_epoch)
    with pytest.raises(Crash):
        _train(kind, options, seed=0, ckpt=tmp_path / "ckpt")
    monkeypatch.undo()
    resumed, epochs_restored = _train(kind, options, seed=0, ckpt=tmp_path / "ckpt")
    assert epochs_restored == 1
    assert resumed == first
