"""Per-epoch checkpoints, in process: a crash mid-training resumes to bit-identical weights.

The crash is an exception raised from the `slow_step` hook after a given number of steps, so
these tests are exact and fast; tests/faults/test_kill_resume.py does the same with SIGKILL.
"""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest
import torch

from tests.conftest import toy_rows
from tinystudent.checkpoint import Checkpoint, flatten, rng_state, set_rng_state, unflatten
from tinystudent.seed import seed_everything
from tinystudent.students import build_student
from tinystudent.teachers import EncoderTeacher, EncoderTeacherConfig
from tinystudent.train import engine
from tinystudent.train.engine import warmup_fraction
from tinystudent.train.loop import TrainConfig, train_student


class Crash(Exception):
    pass


def crash_after(monkeypatch: pytest.MonkeyPatch, module: object, steps: int) -> None:
    calls = {"n": 0}

    def hook() -> None:
        calls["n"] += 1
        if calls["n"] > steps:
            raise Crash

    monkeypatch.setattr(module, "slow_step", hook)


def same_state(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_flatten_round_trip_keeps_types() -> None:
    state = {
        "w": torch.arange(6.0).reshape(2, 3),
        "opt": {0: {"step": torch.tensor(3.0)}, 1: {}},
        "groups": [{"betas": (0.9, 0.999), "params": [0, 1], "lr": 1e-3, "x": None}],
        "np": np.arange(4, dtype=np.uint32),
        "py": random.getstate(),
    }
    tensors: dict[str, torch.Tensor] = {}
    back = unflatten(flatten(state, tensors), tensors)
    assert torch.equal(back["w"], state["w"]) and back["opt"][0]["step"].item() == 3.0
    assert back["groups"][0]["betas"] == (0.9, 0.999) and 1 in back["opt"]
    assert back["np"].dtype == np.uint32 and back["py"] == state["py"]


def test_rng_state_round_trip() -> None:
    gen = torch.Generator().manual_seed(1)
    state = rng_state(gen)
    first = (torch.rand(3), random.random(), np.random.rand(), torch.rand(2, generator=gen))
    set_rng_state(state, gen)
    again = (torch.rand(3), random.random(), np.random.rand(), torch.rand(2, generator=gen))
    assert torch.equal(first[0], again[0]) and first[1:3] == again[1:3]
    assert torch.equal(first[3], again[3])


def test_checkpoint_is_safetensors_json_and_checked(tmp_path: Path) -> None:
    ck = Checkpoint(tmp_path / "c", key="k1")
    assert ck.load() is None
    ck.save({"w": torch.ones(2), "epoch": 1})
    ck.save({"w": torch.zeros(2), "epoch": 2})
    names = sorted(p.name for p in (tmp_path / "c").iterdir())
    assert names == ["state-000001.safetensors", "state.json"]  # older tensors dropped
    assert Checkpoint(tmp_path / "c", key="k1").load()["epoch"] == 2
    assert Checkpoint(tmp_path / "c", key="other").load() is None  # stale inputs: ignored
    tensor_file = tmp_path / "c" / "state-000001.safetensors"
    data = bytearray(tensor_file.read_bytes())
    data[-1] ^= 0xFF
    tensor_file.write_bytes(bytes(data))
    assert Checkpoint(tmp_path / "c", key="k1").load() is None  # damaged: checksum says so


def test_warmup_fraction_avoids_torch_division_by_zero() -> None:
    assert warmup_fraction(10) != 0.1 and warmup_fraction(200) == 0.1
    opt = torch.optim.AdamW(torch.nn.Linear(2, 2).parameters())
    torch.optim.lr_scheduler.OneCycleLR(opt, 0.1, total_steps=10, pct_start=warmup_fraction(10))


# -- teacher -----------------------------------------------------------------------------
def _teacher(model_dir: Path) -> EncoderTeacher:
    cfg = EncoderTeacherConfig(model=str(model_dir), epochs=4, batch_size=8, lr=2e-3)
    seed_everything(0)
    return EncoderTeacher.from_pretrained(["neg", "pos"], cfg)


def test_teacher_resumes_bit_identically(
    tiny_teacher_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    rows = toy_rows(24)
    texts, labels = [t for t, _ in rows], [int(y == "pos") for _, y in rows]
    reference = _teacher(tiny_teacher_dir)
    ref_losses = reference.fine_tune(texts, labels, seed=3)

    ckpt = tmp_path / "teacher.ckpt"
    crash_after(monkeypatch, engine, steps=7)  # 3 steps per epoch: dies in epoch 3
    with pytest.raises(Crash):
        _teacher(tiny_teacher_dir).fine_tune(texts, labels, seed=3, checkpoint_dir=ckpt)
    monkeypatch.undo()
    assert (ckpt / "state.json").exists()
    assert not [p for p in ckpt.iterdir() if p.suffix not in (".json", ".safetensors")]

    resumed = _teacher(tiny_teacher_dir)
    losses = resumed.fine_tune(texts, labels, seed=3, checkpoint_dir=ckpt)
    assert resumed.resumed_from_epoch == 2
    assert losses == ref_losses
    assert same_state(resumed.state_dict(), reference.state_dict())


# -- student -----------------------------------------------------------------------------
def _student_run(texts, probs, labels, ckpt: Path | None, patience: int = 8):
    seed_everything(0)
    student = build_student("pqrnn", {"hidden": 8, "bottleneck": 16, "features": 32}, ["n", "p"])
    cfg = TrainConfig(epochs=5, batch_size=16, patience=patience, seed=1)
    return student, train_student(student, texts, probs, labels, cfg, checkpoint_dir=ckpt)


@pytest.mark.parametrize("patience", [8, 1])  # 1: early stopping state must survive too
def test_student_resumes_bit_identically(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, patience: int
) -> None:
    rows = toy_rows(80)
    texts = [t for t, _ in rows]
    p = np.array([0.8 if y == "pos" else 0.3 for _, y in rows], dtype=np.float32)
    probs = np.stack([1 - p, p], axis=1)
    labels = [int(y == "pos") if i < 8 else -1 for i, (_, y) in enumerate(rows)]
    ref_student, ref = _student_run(texts, probs, labels, None, patience)

    epochs_done = len(ref.history)
    crash_after(monkeypatch, engine, steps=5 * (epochs_done - 1) + 2)  # 5 steps per epoch
    with pytest.raises(Crash):
        _student_run(texts, probs, labels, tmp_path / "s.ckpt", patience)
    monkeypatch.undo()
    student, result = _student_run(texts, probs, labels, tmp_path / "s.ckpt", patience)
    assert result.resumed_from_epoch == epochs_done - 1 > 0
    assert result.history == ref.history and result.best_epoch == ref.best_epoch
    assert same_state(student.state_dict(), ref_student.state_dict())
