"""Hard-label CE with missing labels, and the weighted DistillationLoss contract."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from tinystudent.losses import DistillationLoss, hard_ce, kd_kl, kd_mse


def _batch(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    s = torch.randn(6, 4, generator=g, requires_grad=True)
    p = torch.softmax(torch.randn(6, 4, generator=g), dim=-1)
    labels = torch.tensor([2, -1, 0, -1, 3, 1])
    return s, p, labels


def test_hard_ce_ignores_unlabelled_rows():
    s, _, labels = _batch()
    keep = labels != -1
    expected = F.cross_entropy(s[keep], labels[keep])
    torch.testing.assert_close(hard_ce(s, labels), expected)
    # Changing the logits of an unlabelled row must not change the loss.
    s2 = s.detach().clone()
    s2[1] += torch.tensor([5.0, -3.0, 1.0, 0.0])
    torch.testing.assert_close(hard_ce(s2, labels), expected.detach())


def test_hard_ce_without_labels_is_zero_and_backpropagates():
    s, _, _ = _batch()
    loss = hard_ce(s, torch.full((6,), -1))
    assert loss.item() == 0.0
    assert loss.grad_fn is not None
    loss.backward()
    assert s.grad is not None and torch.count_nonzero(s.grad) == 0


def test_hard_ce_rejects_mismatched_labels():
    with pytest.raises(ValueError, match="labels"):
        hard_ce(torch.zeros(3, 2), torch.zeros(4, dtype=torch.long))


@pytest.mark.parametrize("kind", ["kl", "mse"])
def test_distillation_loss_parts_are_weighted(kind: str):
    s, p, labels = _batch(1)
    loss = DistillationLoss(temperature=3.0, alpha=0.7, kind=kind)
    parts = loss(s, p, labels)
    assert set(parts) == {"kd", "ce"}
    kd = kd_kl(s, p, 3.0) if kind == "kl" else kd_mse(s, p)
    torch.testing.assert_close(parts["kd"], 0.7 * kd)
    torch.testing.assert_close(parts["ce"], 0.3 * hard_ce(s, labels))
    sum(parts.values()).backward()
    assert s.grad is not None and torch.isfinite(s.grad).all()


def test_distillation_loss_attributes_are_settable_floats():
    s, p, labels = _batch(2)
    loss = DistillationLoss()
    assert isinstance(loss.temperature, float) and isinstance(loss.alpha, float)
    loss.temperature, loss.alpha = 1.0, 0.25
    parts = loss(s, p, labels)
    torch.testing.assert_close(parts["kd"], 0.25 * kd_kl(s, p, 1.0))
    torch.testing.assert_close(parts["ce"], 0.75 * hard_ce(s, labels))


def test_distillation_loss_without_labels_has_zero_ce():
    s, p, _ = _batch(3)
    for labels in (None, torch.full((6,), -1)):
        parts = DistillationLoss()(s, p, labels)
        assert parts["ce"].item() == 0.0 and parts["ce"].grad_fn is not None


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [({"temperature": 0.0}, "temperature"), ({"alpha": 1.5}, "alpha"), ({"kind": "ce"}, "kind")],
)
def test_distillation_loss_validates_arguments(kwargs: dict, name: str):
    with pytest.raises(ValueError, match=name):
        DistillationLoss(**kwargs)
