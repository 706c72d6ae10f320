"""The loss counts target tokens only, and the multitask mix is what it says."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from tests.rationale.conftest import toy_problems
from tinystudent.rationale.format import Mode, Task
from tinystudent.rationale.student import load_student
from tinystudent.rationale.train import encode_examples, mix_losses, task_losses
from tinystudent.train.causal_lm import IGNORE, encode_prompt_target, masked_lm_loss, pad_right


@pytest.fixture(scope="module")
def student(tiny_lm_dir: Path):
    return load_student(str(tiny_lm_dir))


def test_prompt_is_masked_and_eos_is_a_target(student):
    _, tok = student
    ids, labels = encode_prompt_target(tok, "Question: 1+1?\nAnswer:", " 2")
    n_prompt = len(tok.encode("Question: 1+1?\nAnswer:", add_special_tokens=False))
    assert labels[:n_prompt] == [IGNORE] * n_prompt
    assert (
        labels[n_prompt:]
        == ids[n_prompt:]
        == tok.encode(" 2", add_special_tokens=False) + [tok.eos_token_id]
    )


def _manual_loss(model, ids, mask, labels):
    logits = model(input_ids=ids, attention_mask=mask).logits[:, :-1]
    return torch.nn.functional.cross_entropy(
        logits.reshape(-1, logits.shape[-1]), labels[:, 1:].reshape(-1), ignore_index=IGNORE
    )


def test_masked_loss_equals_cross_entropy_on_targets_only(student):
    model, tok = student
    rows = [
        encode_prompt_target(tok, p, t)
        for p, t in [("Q: a long prompt\nA:", " 7"), ("Q:\nA:", " 12 apples")]
    ]
    ids, mask, labels = pad_right([r[0] for r in rows], [r[1] for r in rows], tok.pad_token_id)
    with torch.no_grad():
        got = masked_lm_loss(model, ids, mask, labels)
        want = _manual_loss(model, ids, mask, labels)
        # Changing prompt tokens' labels to targets changes the loss: the mask matters.
        unmasked = _manual_loss(model, ids, mask, ids.masked_fill(mask == 0, IGNORE))
    assert torch.allclose(got, want, atol=1e-6)
    assert not torch.allclose(got, unmasked, atol=1e-4)


def test_loss_without_targets_is_an_error(student):
    model, _ = student
    ids = torch.tensor([[5, 6, 7]])
    with pytest.raises(ValueError, match="without any target"):
        masked_lm_loss(model, ids, torch.ones_like(ids), torch.full_like(ids, IGNORE))


def test_multitask_mix(student):
    model, tok = student
    groups, _ = encode_examples(tok, toy_problems(4), Mode.multitask, 512)
    label_only = [[r for r in g if r.task is Task.label] for g in groups]
    with torch.no_grad():
        parts = task_losses(model, groups, tok.pad_token_id)
        alone = task_losses(model, label_only, tok.pad_token_id)
    assert set(parts) == {Task.label, Task.rationale}
    assert torch.equal(mix_losses(parts, Mode.multitask, 1.0), alone[Task.label])
    assert torch.equal(mix_losses(parts, Mode.multitask, 0.0), parts[Task.rationale])
    mixed = mix_losses(parts, Mode.multitask, 0.3)
    assert torch.allclose(mixed, 0.3 * parts[Task.label] + 0.7 * parts[Task.rationale])
    assert parts[Task.label] != parts[Task.rationale]


def test_too_long_examples_are_dropped_whole(student):
    _, tok = student
    groups, too_long = encode_examples(tok, toy_problems(5), Mode.cot, 60)
    assert too_long == 5 and groups == []
    groups, too_long = encode_examples(tok, toy_problems(5), Mode.answer, 80)
    assert too_long == 0 and len(groups) == 5
