"""The training engine on a tiny linear model: hook order, best epoch, resume, deadline."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import torch

from tinystudent.checkpoint import Checkpoint
from tinystudent.train import engine
from tinystudent.train.engine import Fit, Hooks

X = torch.randn(24, 3, generator=torch.Generator().manual_seed(0))
Y = X @ torch.tensor([1.0, -2.0, 0.5])


def _fit(ckpt: Checkpoint | None = None, epochs: int = 4, **kw) -> tuple[Fit, torch.nn.Module]:
    torch.manual_seed(0)
    model = torch.nn.Linear(3, 1)
    opt = torch.optim.AdamW(model.parameters(), lr=0.1)
    gen = torch.Generator().manual_seed(1)
    fit = Fit(
        model,
        opt,
        list(model.parameters()),
        6 * epochs,
        epochs=epochs,
        checkpoint=ckpt,
        generator=gen,
        progress=False,
        **kw,
    )
    return fit, model


def _hooks(fit: Fit, model: torch.nn.Module, calls: list[str], scores=None) -> Hooks:
    def batches(epoch: int):
        calls.append(f"batches{epoch}")
        perm = torch.randperm(24, generator=fit.generator).tolist()
        return [perm[i : i + 4] for i in range(0, 24, 4)]

    def step(rows):
        calls.append("step")
        return {"mse": ((model(X[rows]).squeeze(-1) - Y[rows]) ** 2).mean()}

    def score(epoch, means):
        calls.append(f"score{epoch}")
        return None if scores is None else scores[epoch - 1]

    return Hooks(batches, step, score)


def test_hooks_run_in_order_and_training_lowers_the_loss() -> None:
    fit, model = _fit(epochs=2)
    calls: list[str] = []
    before = float(((model(X).detach().squeeze(-1) - Y) ** 2).mean())
    result = fit.run(_hooks(fit, model, calls))
    assert calls == ["batches1"] + ["step"] * 6 + ["score1", "batches2"] + ["step"] * 6 + ["score2"]
    assert result.steps == 12 and result.epochs == 2 and not model.training
    assert float(((model(X).squeeze(-1) - Y) ** 2).mean()) < before


def test_best_epoch_is_kept_and_patience_stops() -> None:
    fit, model = _fit(epochs=4, patience=2)
    kept = {}

    def remember(epoch, means):
        kept[epoch] = {k: v.clone() for k, v in model.state_dict().items()}
        return [0.1, 0.9, 0.5, 0.4][epoch - 1]

    hooks = _hooks(fit, model, [])
    hooks.score = remember
    result = fit.run(hooks)
    assert result.best_epoch == 2 and result.best_score == 0.9 and result.stopped_early
    assert result.epochs == 4 and sorted(kept) == [1, 2, 3, 4]
    assert all(torch.equal(model.state_dict()[k], kept[2][k]) for k in kept[2])


@pytest.mark.parametrize("every", [0, 4])  # per epoch; every 4 steps (resume inside an epoch)
def test_resume_after_a_crash_is_bit_identical(tmp_path: Path, monkeypatch, every: int) -> None:
    fit, model = _fit()
    fit.run(_hooks(fit, model, []))
    want = model.state_dict()

    calls = {"n": 0}

    def crash() -> None:
        calls["n"] += 1
        if calls["n"] > 10:
            raise KeyboardInterrupt

    ckpt = Checkpoint(tmp_path / "c", key="k")
    monkeypatch.setattr(engine, "slow_step", crash)
    fit, model = _fit(ckpt, checkpoint_every=every)
    with pytest.raises(KeyboardInterrupt):
        fit.run(_hooks(fit, model, []))
    monkeypatch.undo()
    fit, model = _fit(ckpt, checkpoint_every=every)
    result = fit.run(_hooks(fit, model, []))
    assert result.resumed_step == (6 if every == 0 else 8)  # epoch 1 done / inside epoch 2
    assert result.steps == 24
    assert all(torch.equal(model.state_dict()[k], want[k]) for k in want)


def test_deadline_stops_cleanly_and_saves(tmp_path: Path) -> None:
    ckpt = Checkpoint(tmp_path / "c", key="k")
    fit, model = _fit(ckpt, deadline=time.perf_counter() - 1)
    result = fit.run(_hooks(fit, model, []))
    assert result.stopped_by_time and result.steps == 0 and not model.training
    assert ckpt.load() is not None
