"""Properties of the soft-label terms that a wrong formula would break."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from tinystudent.losses import kd_kl, kd_mse


def _probs(rows: int, classes: int, scale: float = 1.0, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.softmax(scale * torch.randn(rows, classes, generator=g), dim=-1)


@settings(max_examples=25, deadline=None, database=None)
@given(
    seed=st.integers(0, 10_000),
    temperature=st.floats(0.5, 8.0),
    classes=st.integers(2, 6),
)
def test_kl_of_a_distribution_with_itself_is_zero(seed: int, temperature: float, classes: int):
    p = _probs(4, classes, scale=3.0, seed=seed).double()
    loss = kd_kl(p.log(), p, temperature)
    assert loss.abs().item() < 1e-10


def test_kl_is_positive_for_different_distributions():
    p = _probs(4, 5, seed=1)
    s = torch.randn(4, 5, generator=torch.Generator().manual_seed(2))
    assert kd_kl(s, p, 2.0).item() > 1e-4


def test_kl_at_t1_matches_torch_kl_div():
    p = _probs(6, 4, seed=3)
    s = torch.randn(6, 4, generator=torch.Generator().manual_seed(4))
    expected = F.kl_div(F.log_softmax(s, dim=-1), p, reduction="batchmean")
    torch.testing.assert_close(kd_kl(s, p, 1.0), expected)


def test_kl_has_t_squared_factor():
    p = _probs(6, 4, seed=5)
    s = torch.randn(6, 4, generator=torch.Generator().manual_seed(6))
    t = 3.0
    p_t = torch.softmax(p.log() / t, dim=-1)
    plain = F.kl_div(F.log_softmax(s / t, dim=-1), p_t, reduction="batchmean")
    torch.testing.assert_close(kd_kl(s, p, t), t * t * plain)


def test_cached_zero_probability_stays_finite():
    p = torch.tensor([[1.0, 0.0, 0.0]])
    s = torch.tensor([[0.0, 1.0, -1.0]], requires_grad=True)
    loss = kd_kl(s, p, 2.0)
    loss.backward()
    assert torch.isfinite(loss)
    assert s.grad is not None and torch.isfinite(s.grad).all()


def _grad_norm(temperature: float, t_squared: bool) -> float:
    # Small logits: softmax is close to linear, so q_T - p_T ~ (s - t) / (T * C) and the
    # T^2-scaled gradient T * (q_T - p_T) / B is ~independent of T; unscaled it falls as 1/T^2.
    g = torch.Generator().manual_seed(7)
    teacher = torch.softmax(0.1 * torch.randn(8, 5, generator=g), dim=-1)
    s = (0.1 * torch.randn(8, 5, generator=g)).requires_grad_()
    loss = kd_kl(s, teacher, temperature)
    if not t_squared:
        loss = loss / temperature**2
    (grad,) = torch.autograd.grad(loss, s)
    return grad.norm().item()


def test_t_squared_keeps_gradient_scale_stable_across_temperatures():
    ratio = _grad_norm(1.0, t_squared=True) / _grad_norm(4.0, t_squared=True)
    assert 0.5 < ratio < 2.0


def test_without_t_squared_the_gradient_scale_collapses():
    # The same check as above fails for the unscaled KL: the ratio is ~T^2 = 16.
    ratio = _grad_norm(1.0, t_squared=False) / _grad_norm(4.0, t_squared=False)
    assert not 0.5 < ratio < 2.0
    assert ratio == pytest.approx(16.0, rel=0.1)


def test_kd_kl_gradcheck():
    g = torch.Generator().manual_seed(8)
    s = torch.randn(3, 4, generator=g, dtype=torch.float64, requires_grad=True)
    p = torch.softmax(torch.randn(3, 4, generator=g, dtype=torch.float64), dim=-1)
    p.requires_grad_()
    assert torch.autograd.gradcheck(lambda a, b: kd_kl(a, b, 2.5), (s, p))


def test_kd_mse_gradcheck():
    g = torch.Generator().manual_seed(9)
    s = torch.randn(3, 4, generator=g, dtype=torch.float64, requires_grad=True)
    p = torch.softmax(torch.randn(3, 4, generator=g, dtype=torch.float64), dim=-1)
    p.requires_grad_()
    assert torch.autograd.gradcheck(kd_mse, (s, p))


@settings(max_examples=25, deadline=None, database=None)
@given(seed=st.integers(0, 10_000), shift=st.floats(-50.0, 50.0))
def test_kd_mse_is_zero_for_teacher_logits_up_to_a_shift(seed: int, shift: float):
    g = torch.Generator().manual_seed(seed)
    teacher_logits = 2.0 * torch.randn(4, 5, generator=g, dtype=torch.float64)
    p = torch.softmax(teacher_logits, dim=-1)
    assert kd_mse(teacher_logits + shift, p).item() < 1e-12


def test_kd_mse_matches_centred_definition():
    g = torch.Generator().manual_seed(10)
    s = torch.randn(4, 3, generator=g)
    p = _probs(4, 3, seed=11)
    lp = p.log()
    expected = ((s - s.mean(1, keepdim=True)) - (lp - lp.mean(1, keepdim=True))).pow(2).mean()
    torch.testing.assert_close(kd_mse(s, p), expected)


def test_shape_mismatch_and_bad_temperature_raise():
    with pytest.raises(ValueError, match="teacher_probs"):
        kd_kl(torch.zeros(2, 3), torch.full((2, 4), 0.25), 1.0)
    with pytest.raises(ValueError, match="temperature"):
        kd_kl(torch.zeros(2, 3), torch.full((2, 3), 1 / 3), 0.0)
