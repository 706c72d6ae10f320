"""Intermediate-layer losses: zero on identical features, positive otherwise, masks honoured."""

from __future__ import annotations

import pytest
import torch

from tinystudent.losses import (
    AttentionLoss,
    HiddenStateLoss,
    attention_mse,
    hidden_mse,
    uniform_layer_map,
)


def _hidden(layers: int, width: int, seed: int, dtype: torch.dtype = torch.float32):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(2, 5, width, generator=g, dtype=dtype) for _ in range(layers)]


def _attn(layers: int, heads: int, seed: int) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return [torch.softmax(torch.randn(2, heads, 5, 5, generator=g), -1) for _ in range(layers)]


@pytest.mark.parametrize(
    ("s", "t", "emb", "expected"),
    [
        (4, 12, False, [2, 5, 8, 11]),
        (3, 3, False, [0, 1, 2]),
        (6, 12, False, [1, 3, 5, 7, 9, 11]),
        (4, 2, False, [0, 0, 1, 1]),
        (5, 13, True, [0, 3, 6, 9, 12]),
    ],
)
def test_uniform_layer_map(s: int, t: int, emb: bool, expected: list[int]):
    assert uniform_layer_map(s, t, with_embeddings=emb) == expected


def test_hidden_loss_is_zero_for_identical_features_and_positive_otherwise():
    teacher = _hidden(6, 8, seed=0)
    loss = HiddenStateLoss(8, 8, mapping=[1, 3, 5])
    assert isinstance(loss.projection, torch.nn.Identity)
    student = [teacher[1], teacher[3], teacher[5]]
    assert loss(student, teacher)["hidden"].item() == 0.0
    # The same features under the default mapping [1, 3, 5] for 3 of 6 layers, too.
    assert HiddenStateLoss(8, 8)(student, teacher)["hidden"].item() == 0.0
    # Right features, wrong layers: positive.
    assert loss([teacher[0], teacher[2], teacher[4]], teacher)["hidden"].item() > 0.1


def test_hidden_loss_matches_mse_through_the_projection():
    teacher = _hidden(4, 6, seed=1)
    student = [x.requires_grad_() for x in _hidden(2, 3, seed=2)]
    loss = HiddenStateLoss(3, 6, weight=0.5)
    assert isinstance(loss.projection, torch.nn.Linear)
    out = loss(student, teacher)["hidden"]
    proj = loss.projection
    pairs = zip(student, teacher[1::2], strict=True)
    expected = 0.5 * 0.5 * sum(torch.nn.functional.mse_loss(proj(s), t) for s, t in pairs)
    torch.testing.assert_close(out, expected)
    out.backward()
    assert all(p.grad is not None for p in loss.parameters())  # projection is trainable


def test_hidden_loss_ignores_padding():
    teacher = _hidden(1, 4, seed=3)
    student = [teacher[0].clone()]
    student[0][0, 3:] += 10.0  # garbage on the padded positions of row 0
    mask = torch.ones(2, 5)
    mask[0, 3:] = 0
    assert hidden_mse(student[0], teacher[0], mask).item() == 0.0
    assert hidden_mse(student[0], teacher[0]).item() > 1.0


def test_hidden_loss_gradcheck():
    torch.manual_seed(0)
    loss = HiddenStateLoss(3, 4).double()
    student = tuple(x.requires_grad_() for x in _hidden(2, 3, seed=4, dtype=torch.float64))
    teacher = _hidden(4, 4, seed=5, dtype=torch.float64)
    mask = torch.tensor([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]], dtype=torch.float64)
    assert torch.autograd.gradcheck(lambda a, b: loss([a, b], teacher, mask)["hidden"], student)


def test_attention_loss_zero_for_identical_maps_and_positive_otherwise():
    teacher = _attn(4, 4, seed=6)
    loss = AttentionLoss()
    assert loss(teacher[1::2], teacher)["attention"].item() == 0.0
    assert loss(teacher[0::2], teacher)["attention"].item() > 0.0


def test_attention_loss_averages_heads_when_counts_differ():
    teacher = _attn(2, 4, seed=7)
    student = [t.mean(dim=1, keepdim=True).expand(-1, 2, -1, -1) for t in teacher]
    assert AttentionLoss()(student, teacher)["attention"].item() < 1e-12
    assert AttentionLoss()(_attn(2, 2, seed=8), teacher)["attention"].item() > 0.0


def test_attention_loss_ignores_masked_query_and_key_positions():
    teacher = _attn(1, 2, seed=9)[0]
    student = teacher.clone()
    student[0, :, 3:, :] = 0.5  # padded queries of row 0
    student[0, :, :, 4] = 0.9  # a padded key of row 0
    mask = torch.ones(2, 5)
    mask[0, 3:] = 0
    assert attention_mse(student, teacher, mask).item() == 0.0
    assert attention_mse(student, teacher).item() > 0.0


def test_all_masked_gives_attached_zero():
    s = torch.randn(1, 3, 2, requires_grad=True)
    out = hidden_mse(s, torch.zeros(1, 3, 2), torch.zeros(1, 3))
    assert out.item() == 0.0
    out.backward()


def test_bad_mapping_and_widths_raise():
    teacher = _hidden(3, 4, seed=10)
    with pytest.raises(ValueError, match="mapping"):
        HiddenStateLoss(4, 4, mapping=[0, 3])(teacher[:2], teacher)
    with pytest.raises(ValueError, match="mapping"):
        HiddenStateLoss(4, 4, mapping=[0])(teacher[:2], teacher)
    with pytest.raises(ValueError, match="student_dim"):
        HiddenStateLoss(3, 4)(teacher[:2], teacher)
