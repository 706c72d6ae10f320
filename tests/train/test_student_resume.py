"""The student runs on the engine: a run killed inside an epoch resumes, from the engine's
last per-epoch checkpoint, to the very weights and log of an uninterrupted run, including
objectives with weights of their own (the embedding projection) and a moving schedule."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from tests.tiny_students import LABELS, TINY, synthetic
from tinystudent.seed import seed_everything
from tinystudent.students import build_student
from tinystudent.train import TeacherSignals, TrainConfig, engine, train_student

CFG = {
    "epochs": 3,
    "batch_size": 16,
    "objectives": [
        {"kind": "kd"},
        {"kind": "ce", "weight": 0.2},
        {"kind": "embedding", "loss": "both", "weight": 0.5},
    ],
    "schedule": {"temperature": [4.0, 1.0]},
}


class Crash(Exception):
    pass


def _run(ckpt: Path | None):
    texts, gold = synthetic(90, seed=3)
    rng = np.random.default_rng(0)
    p = np.clip(np.array(gold, dtype=np.float32) * 0.6 + 0.2 + rng.normal(0, 0.1, 90), 0, 1)
    signals = TeacherSignals(
        probs=np.stack([1 - p, p], axis=1), embeddings=rng.normal(size=(90, 6))
    )
    labels = [y if i % 4 == 0 else -1 for i, y in enumerate(gold)]
    seed_everything(0)
    student = build_student("bag", TINY["bag"], LABELS)
    result = train_student(student, texts, signals, labels, TrainConfig(**CFG), ckpt)
    return student, result


def test_killed_student_resumes_to_the_uninterrupted_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ref_student, ref = _run(None)
    calls = {"n": 0}

    def crash() -> None:  # 81 training rows / 16 = 6 steps per epoch: dies in epoch 3
        calls["n"] += 1
        if calls["n"] > 14:
            raise Crash

    monkeypatch.setattr(engine, "slow_step", crash)
    with pytest.raises(Crash):
        _run(tmp_path / "ckpt")
    monkeypatch.undo()
    assert (tmp_path / "ckpt" / "state.json").exists()
    student, result = _run(tmp_path / "ckpt")
    assert result.resumed_from_epoch == 2
    assert result.history == ref.history and result.best_epoch == ref.best_epoch
    assert "schedule.temperature" in result.history[0] and "embedding" in result.history[0]
    a, b = student.state_dict(), ref_student.state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_a_checkpoint_from_other_inputs_is_not_resumed(tmp_path: Path) -> None:
    _run(tmp_path / "ckpt")
    _, again = _run(tmp_path / "ckpt")  # same inputs: every epoch restored, none retrained
    assert again.resumed_from_epoch == 3
    texts, gold = synthetic(90, seed=4)  # other texts: the old checkpoint is stale
    seed_everything(0)
    student = build_student("bag", TINY["bag"], LABELS)
    probs = np.tile(np.array([[0.4, 0.6]], dtype=np.float32), (90, 1))
    cfg = TrainConfig(epochs=1, batch_size=16)
    assert (
        train_student(student, texts, probs, None, cfg, tmp_path / "ckpt").resumed_from_epoch == 0
    )
