"""R-Drop symmetric KL and continuation schedules."""

from __future__ import annotations

import math
from itertools import pairwise

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from tinystudent.losses import ContinuationSchedule, DistillationLoss, RDropLoss, symmetric_kl


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


def test_rdrop_loss_weight():
    a, b = _logits(4), _logits(5)
    out = RDropLoss(weight=2.5)(a, b)
    assert set(out) == {"rdrop"}
    torch.testing.assert_close(out["rdrop"], 2.5 * symmetric_kl(a, b))
    with pytest.raises(ValueError, match="weight"):
        RDropLoss(weight=-1.0)


@pytest.mark.parametrize("kind", ["linear", "cosine"])
@pytest.mark.parametrize("warmup", [1.0, 0.3])
def test_schedule_hits_start_and_end(kind: str, warmup: float):
    sched = ContinuationSchedule(8.0, 1.0, 1.0, 0.3, warmup_fraction=warmup, kind=kind)
    assert sched.at(0.0) == (8.0, 1.0)
    assert sched.at(1.0) == (1.0, 0.3)
    assert sched.at(warmup) == (1.0, 0.3)
    mid_t, mid_a = sched.at(warmup / 2)
    assert mid_t == pytest.approx(4.5) and mid_a == pytest.approx(0.65)  # both kinds: halfway


def test_schedule_kinds_differ_off_the_midpoint():
    lin = ContinuationSchedule(4.0, 2.0, 0.5, 0.5, kind="linear")
    cos = ContinuationSchedule(4.0, 2.0, 0.5, 0.5, kind="cosine")
    assert lin.at(0.25)[0] == pytest.approx(3.5)
    assert cos.at(0.25)[0] == pytest.approx(4.0 - 2.0 * (1 - math.cos(math.pi / 4)) / 2)


@settings(max_examples=40, deadline=None, database=None)
@given(
    t0=st.floats(0.5, 10.0),
    t1=st.floats(0.5, 10.0),
    a0=st.floats(0.0, 1.0),
    a1=st.floats(0.0, 1.0),
    warmup=st.floats(0.05, 1.0),
    kind=st.sampled_from(["linear", "cosine"]),
)
def test_schedule_is_monotone_and_bounded(
    t0: float, t1: float, a0: float, a1: float, warmup: float, kind: str
):
    sched = ContinuationSchedule(t0, t1, a0, a1, warmup_fraction=warmup, kind=kind)
    values = [sched.at(i / 50) for i in range(51)]
    for (ta, aa), (tb, ab) in pairwise(values):
        assert (tb - ta) * math.copysign(1.0, t1 - t0) >= -1e-12
        assert (ab - aa) * math.copysign(1.0, a1 - a0) >= -1e-12
    for t, a in values:
        assert min(t0, t1) - 1e-12 <= t <= max(t0, t1) + 1e-12
        assert min(a0, a1) - 1e-12 <= a <= max(a0, a1) + 1e-12


def test_schedule_apply_sets_the_loss():
    loss = DistillationLoss(temperature=2.0, alpha=0.9)
    sched = ContinuationSchedule(6.0, 2.0, 1.0, 0.5)
    assert sched.apply(loss, 0.5) == (4.0, 0.75)
    assert (loss.temperature, loss.alpha) == (4.0, 0.75)


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"start_temperature": 0.0}, "start_temperature"),
        ({"end_temperature": float("inf")}, "end_temperature"),
        ({"start_alpha": -0.1}, "start_alpha"),
        ({"end_alpha": 1.1}, "end_alpha"),
        ({"warmup_fraction": 0.0}, "warmup_fraction"),
        ({"kind": "step"}, "kind"),
    ],
)
def test_schedule_validates_fields(kwargs: dict, name: str):
    args = {"start_temperature": 4.0, "end_temperature": 1.0, "start_alpha": 1.0, "end_alpha": 0.5}
    with pytest.raises(ValueError, match=name):
        ContinuationSchedule(**{**args, **kwargs})


@pytest.mark.parametrize("progress", [-0.1, 1.5, float("nan")])
def test_schedule_rejects_progress_out_of_range(progress: float):
    with pytest.raises(ValueError, match="progress"):
        ContinuationSchedule(4.0, 1.0, 1.0, 0.5).at(progress)
