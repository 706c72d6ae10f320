"""The three objectives: zero (or minimal) for a perfect student, a hand-checked InfoNCE value,
and a weighted sum that names its parts."""

from __future__ import annotations

import math

import pytest
import torch

from tinystudent.embeddings.objectives import (
    ObjectiveConfig,
    cosine_loss,
    distill_objective,
    info_nce,
    mse_loss,
)


def test_mse_and_cosine_are_zero_for_identical_embeddings():
    t = torch.randn(8, 16)
    assert mse_loss(t.clone(), t).item() == pytest.approx(0.0, abs=1e-6)
    assert cosine_loss(t.clone(), t).item() == pytest.approx(0.0, abs=1e-6)
    # cosine ignores length, MSE does not
    assert cosine_loss(3 * t, t).item() == pytest.approx(0.0, abs=1e-6)
    assert mse_loss(3 * t, t).item() > 0


def test_mse_sums_over_dimensions_and_averages_over_the_batch():
    s = torch.zeros(2, 4)
    t = torch.tensor([[1.0, 1.0, 0.0, 0.0], [2.0, 0.0, 0.0, 0.0]])
    assert mse_loss(s, t).item() == pytest.approx((2 + 4) / 2)


def test_cosine_of_opposite_vectors_is_two():
    t = torch.randn(3, 5)
    assert cosine_loss(-t, t).item() == pytest.approx(2.0, abs=1e-6)


def test_info_nce_hand_example():
    # Two orthogonal unit vectors, temperature 1: logits [[1, 0], [0, 1]], so each row's loss
    # is -log(e / (e + 1)) = log(1 + e^-1).
    e = torch.eye(2)
    expected = math.log(1 + math.exp(-1))
    assert info_nce(e, e, temperature=1.0).item() == pytest.approx(expected, rel=1e-6)
    # Swapped: every row's own teacher vector is the wrong one: log(1 + e).
    swapped = e.flip(0)
    assert info_nce(swapped, e, temperature=1.0).item() == pytest.approx(math.log(1 + math.e))
    # Lengths do not matter (cosine), and a low temperature makes the perfect match ~0.
    assert info_nce(5 * e, e, temperature=1.0).item() == pytest.approx(expected, rel=1e-6)
    assert info_nce(e, e, temperature=0.01).item() < 1e-6


def test_symmetric_info_nce_averages_both_directions():
    torch.manual_seed(0)
    s, t = torch.randn(6, 4), torch.randn(6, 4)
    one_way = info_nce(s, t, 0.5)
    other_way = info_nce(t, s, 0.5)  # columns of cos(s, t) are rows of cos(t, s)
    assert info_nce(s, t, 0.5, symmetric=True).item() == pytest.approx(
        ((one_way + other_way) / 2).item(), rel=1e-5
    )


def test_info_nce_is_lowest_for_the_matching_assignment():
    torch.manual_seed(1)
    t = torch.nn.functional.normalize(torch.randn(16, 32), dim=-1)
    perm = torch.randperm(16)
    assert info_nce(t, t).item() < info_nce(t[perm], t).item()


def test_objective_weights_and_names_its_parts():
    torch.manual_seed(2)
    s, t = torch.randn(4, 8), torch.randn(4, 8)
    cfg = ObjectiveConfig(mse=2.0, cosine=0.5, contrastive=0.25, temperature=0.1)
    parts = distill_objective(s, t, cfg)
    assert set(parts) == {"mse", "cosine", "contrastive"}
    assert parts["mse"].item() == pytest.approx(2.0 * mse_loss(s, t).item())
    assert parts["cosine"].item() == pytest.approx(0.5 * cosine_loss(s, t).item())
    assert parts["contrastive"].item() == pytest.approx(0.25 * info_nce(s, t, 0.1).item())
    only = distill_objective(s, t, ObjectiveConfig(mse=0, cosine=1, contrastive=0))
    assert set(only) == {"cosine"}


def test_teacher_vectors_get_no_gradient():
    s = torch.randn(4, 8, requires_grad=True)
    t = torch.randn(4, 8, requires_grad=True)
    parts = distill_objective(s, t, ObjectiveConfig())
    torch.stack(list(parts.values())).sum().backward()
    assert s.grad is not None and t.grad is None


def test_shape_mismatch_and_all_zero_weights_are_errors():
    with pytest.raises(ValueError, match="must both be"):
        mse_loss(torch.zeros(2, 3), torch.zeros(2, 4))
    with pytest.raises(ValueError, match="all weights are 0"):
        ObjectiveConfig(mse=0, cosine=0, contrastive=0)


def test_losses_decrease_when_fitting_a_linear_map():
    torch.manual_seed(3)
    x = torch.randn(64, 12)
    teacher = torch.nn.functional.normalize(x @ torch.randn(12, 6), dim=-1)
    model = torch.nn.Linear(12, 6)
    opt = torch.optim.Adam(model.parameters(), lr=0.1)
    cfg = ObjectiveConfig(temperature=0.1)
    first = {k: v.item() for k, v in distill_objective(model(x), teacher, cfg).items()}
    for _ in range(60):
        loss = torch.stack(list(distill_objective(model(x), teacher, cfg).values())).sum()
        opt.zero_grad()
        loss.backward()
        opt.step()
    last = {k: v.item() for k, v in distill_objective(model(x), teacher, cfg).items()}
    for name in first:
        assert last[name] < 0.5 * first[name], name
