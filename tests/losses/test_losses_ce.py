"""Hard-label CE over the rows that carry a gold label."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from tinystudent.losses import hard_ce


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
