"""Training: it learns, a killed run resumes to the same weights, LoRA merges back."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

import tinystudent.rationale.train as train_mod
from tests.rationale.conftest import toy_problems
from tinystudent.checkpoint import Checkpoint
from tinystudent.errors import DataError
from tinystudent.rationale.student import load_student
from tinystudent.rationale.train import RationaleTrainConfig, batch_indices, train_student

CFG = dict(mode="multitask", steps=6, batch_size=4, lr=3e-3, max_seq_len=200)


def _weights(model) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def test_training_lowers_the_loss(tiny_lm_dir: Path):
    model, tok = load_student(str(tiny_lm_dir))
    cfg = RationaleTrainConfig(**{**CFG, "steps": 25, "mode": "cot"})
    _, result = train_student(model, tok, toy_problems(16), cfg, progress=False)
    assert result.steps == 25 and len(result.losses) == 25
    assert sum(result.losses[-5:]) / 5 < 0.8 * sum(result.losses[:5]) / 5
    assert result.task_losses["rationale"] == []  # cot has one task


def test_batches_are_a_pure_function_of_seed_and_step():
    seen = [i for s in range(3) for i in batch_indices(12, 4, s, seed=1)]
    assert sorted(seen) == list(range(12))  # one epoch = every example once
    assert batch_indices(12, 4, 5, seed=1) == batch_indices(12, 4, 5, seed=1)
    assert batch_indices(12, 4, 0, seed=1) != batch_indices(12, 4, 0, seed=2)


def test_killed_run_resumes_to_the_same_weights(tiny_lm_dir: Path, tmp_path: Path, monkeypatch):
    data = toy_problems(10)
    cfg = RationaleTrainConfig(**CFG, checkpoint_every=2)
    model, tok = load_student(str(tiny_lm_dir))
    straight, full = train_student(model, tok, data, cfg, progress=False)
    want = _weights(straight)

    calls = {"n": 0}
    real_mix = train_mod.mix_losses

    def crash_at_step_5(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 5:
            raise KeyboardInterrupt("simulated kill")
        return real_mix(*args, **kwargs)

    ckpt = Checkpoint(tmp_path / "ckpt", key="k1")
    monkeypatch.setattr(train_mod, "mix_losses", crash_at_step_5)
    model, tok = load_student(str(tiny_lm_dir))
    with pytest.raises(KeyboardInterrupt):
        train_student(model, tok, data, cfg, ckpt, progress=False)
    monkeypatch.setattr(train_mod, "mix_losses", real_mix)

    model, tok = load_student(str(tiny_lm_dir))
    resumed, result = train_student(model, tok, data, cfg, ckpt, progress=False)
    assert result.resumed_step == 4 and result.steps == 6
    assert result.losses == pytest.approx(full.losses, rel=1e-5)
    got = _weights(resumed)
    for k in want:
        assert torch.allclose(got[k], want[k], atol=1e-6), k


def test_checkpoint_of_other_inputs_is_ignored(tiny_lm_dir: Path, tmp_path: Path):
    data = toy_problems(6)
    cfg = RationaleTrainConfig(**{**CFG, "steps": 2}, checkpoint_every=1)
    model, tok = load_student(str(tiny_lm_dir))
    train_student(model, tok, data, cfg, Checkpoint(tmp_path, "a"), progress=False)
    model, tok = load_student(str(tiny_lm_dir))
    _, result = train_student(model, tok, data, cfg, Checkpoint(tmp_path, "b"), progress=False)
    assert result.resumed_step == 0


def test_lora_trains_adapters_and_merges_into_a_plain_model(tiny_lm_dir: Path):
    pytest.importorskip("peft")
    model, tok = load_student(str(tiny_lm_dir))
    before = _weights(model)
    cfg = RationaleTrainConfig(
        **{**CFG, "steps": 3, "lr": 1e-2},
        lora={"r": 2, "alpha": 4, "target_modules": ["q_proj", "v_proj"]},
    )
    merged, result = train_student(model, tok, toy_problems(6), cfg, progress=False)
    assert result.steps == 3
    after = _weights(merged)
    assert set(after) == set(before)  # no adapter tensors left: a plain transformers model
    changed = [k for k in before if not torch.equal(before[k], after[k])]
    assert changed and all("q_proj" in k or "v_proj" in k for k in changed)


def test_nothing_fits_is_a_clear_error(tiny_lm_dir: Path):
    model, tok = load_student(str(tiny_lm_dir))
    cfg = RationaleTrainConfig(**{**CFG, "max_seq_len": 10})
    with pytest.raises(DataError, match="max_seq_len=10"):
        train_student(model, tok, toy_problems(3), cfg, progress=False)


def test_frozen_embeddings_stay_put_while_the_layers_learn(tiny_lm_dir: Path):
    model, tok = load_student(str(tiny_lm_dir))
    emb = model.get_input_embeddings().weight.detach().clone()
    layer = model.model.layers[0].self_attn.q_proj.weight.detach().clone()
    cfg = RationaleTrainConfig(**{**CFG, "steps": 2, "freeze_embeddings": True})
    trained, _ = train_student(model, tok, toy_problems(8), cfg, progress=False)
    assert torch.equal(trained.get_input_embeddings().weight, emb)
    assert not torch.equal(trained.model.layers[0].self_attn.q_proj.weight, layer)
