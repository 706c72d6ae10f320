"""R-Drop's symmetric KL: definition, symmetry, gradients."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from tinystudent.losses import symmetric_kl


def _logits(seed: int, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    return torch.randn(4, 5, generator=torch.Generator().manual_seed(seed), dtype=dtype)


def test_symmetric_kl_definition_symmetry_and_zero():
    a, b = _logits(0), _logits(1)
    la, lb = F.log_softmax(a, -1), F.log_softmax(b, -1)
    kl_ab = (la.exp() * (la - lb)).sum(-1).mean()
    kl_ba = (lb.exp() * (lb - la)).sum(-1).mean()
    torch.testing.assert_close(symmetric_kl(a, b), (kl_ab + kl_ba) / 2)
    torch.testing.assert_close(symmetric_kl(a, b), symmetric_kl(b, a))
    assert symmetric_kl(a, a + 3.0).abs().item() < 1e-6  # same distribution
    assert symmetric_kl(a, b).item() > 0.01


def test_symmetric_kl_gradcheck():
    a = _logits(2, torch.float64).requires_grad_()
    b = _logits(3, torch.float64).requires_grad_()
    assert torch.autograd.gradcheck(symmetric_kl, (a, b))
