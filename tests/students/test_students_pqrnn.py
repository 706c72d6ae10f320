"""pQRNN pieces: the hash projection, the closed-form fo-pooling, and the student itself."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.nn import functional as F

from tinystudent.students import build_student, load_student
from tinystudent.students.hashing import HashProjection, tokenize
from tinystudent.students.qrnn import CHUNK, MIN_LOG_F, BiQRNN, fo_pool

LABELS = ["neg", "pos"]
TINY = {"features": 64, "bottleneck": 16, "hidden": 8, "layers": 2}


# -- hash projection ---------------------------------------------------------------------------
def test_projection_is_deterministic_across_instances_and_memo_states():
    tokens = ["good", "bad", "movie", "!", "good"]
    a = HashProjection(128, seed=3).vectors(tokens)
    proj = HashProjection(128, seed=3, memo_size=2)  # memo overflows and is cleared
    proj.vectors(["x", "y", "z"])
    b = proj.vectors(tokens)
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(a[0], a[4])
    assert a.dtype == np.int8 and a.shape == (5, 128)


def test_projection_depends_on_token_and_seed():
    a = HashProjection(128, seed=0).vectors(["good", "bad"])
    b = HashProjection(128, seed=1).vectors(["good"])
    assert not np.array_equal(a[0], a[1])
    assert not np.array_equal(a[0], b[0])


def test_projection_is_ternary_with_the_documented_frequencies():
    v = HashProjection(256).vectors([f"tok{i}" for i in range(2000)])
    assert set(np.unique(v).tolist()) <= {-1, 0, 1}
    # +1 and -1 each with probability 1/4, 0 with 1/2 (2000 * 256 draws: tight bounds)
    assert abs((v == 1).mean() - 0.25) < 0.01
    assert abs((v == -1).mean() - 0.25) < 0.01
    # different tokens are near-orthogonal
    f = v.astype(np.float32)
    cos = (f[:100] @ f[100:200].T) / np.outer(
        np.linalg.norm(f[:100], axis=1), np.linalg.norm(f[100:200], axis=1)
    )
    assert np.abs(cos).mean() < 0.1


def test_projection_rejects_widths_not_multiple_of_32():
    with pytest.raises(ValueError, match="multiple of 32"):
        HashProjection(100)


def test_batch_pads_truncates_and_keeps_one_position_for_empty_text():
    proj, mask = HashProjection(64).batch(["a b c d e", "", "Hi!"], max_tokens=4)
    assert proj.shape == (3, 4, 64) and mask.shape == (3, 4)
    np.testing.assert_array_equal(mask.sum(1), [4, 1, 2])
    assert not proj[1].any()  # the empty text's kept position is all zeros
    assert not proj[2, 2:].any()
    assert tokenize("Hi, THERE!") == ["hi", ",", "there", "!"]


# -- fo-pooling --------------------------------------------------------------------------------
def fo_pool_loop(log_f: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
    """The recurrence c_t = f_t c_{t-1} + u_t, one step at a time (with the same clamp)."""
    f = log_f.clamp(min=MIN_LOG_F).exp()
    c = torch.zeros_like(u[:, 0])
    out = []
    for t in range(u.shape[1]):
        c = f[:, t] * c + u[:, t]
        out.append(c)
    return torch.stack(out, dim=1)


@pytest.mark.parametrize("length", [1, 5, CHUNK, CHUNK + 1, 3 * CHUNK + 7])
def test_fo_pool_matches_the_step_by_step_recurrence(length: int):
    g = torch.Generator().manual_seed(length)
    log_f = F.logsigmoid(3 * torch.randn(3, length, 5, generator=g))
    u = torch.randn(3, length, 5, generator=g)
    torch.testing.assert_close(fo_pool(log_f, u), fo_pool_loop(log_f, u), atol=1e-5, rtol=1e-4)


def test_fo_pool_clamps_hard_resets_without_overflow():
    log_f = torch.full((1, 4 * CHUNK, 2), -50.0)  # far below MIN_LOG_F: state is reset
    u = torch.ones(1, 4 * CHUNK, 2)
    c = fo_pool(log_f, u)
    assert torch.isfinite(c).all()
    torch.testing.assert_close(c, fo_pool_loop(log_f, u), atol=1e-5, rtol=1e-4)


def test_fo_pool_passes_state_through_steps_with_forget_one():
    log_f = torch.zeros(1, 6, 1)  # f = 1: state only accumulates
    u = torch.tensor([1.0, 0, 0, 2.0, 0, 0]).view(1, 6, 1)
    torch.testing.assert_close(fo_pool(log_f, u).flatten(), torch.tensor([1.0, 1, 1, 3, 3, 3]))


# -- the layer and the student -----------------------------------------------------------------
@pytest.mark.parametrize("window", [1, 2, 3])
def test_biqrnn_ignores_right_padding_when_padded_inputs_are_zero(window: int):
    torch.manual_seed(0)
    layer = BiQRNN(6, 4, window=window).eval()
    x = torch.randn(1, 5, 6)
    padded = torch.cat([x, torch.zeros(1, 9, 6)], dim=1)
    mask = torch.cat([torch.ones(1, 5), torch.zeros(1, 9)], dim=1)
    alone = layer(x, torch.ones(1, 5))
    torch.testing.assert_close(layer(padded, mask)[:, :5], alone, atol=1e-6, rtol=0)
    assert not layer(padded, mask)[:, 5:].any()


def _padding_gap(window: int) -> float:
    torch.manual_seed(0)
    student = build_student("pqrnn", {**TINY, "window": window}, LABELS).eval()
    with torch.no_grad():
        alone = student(**student.featurize(["a good movie"])).logits[0]
        batched = student(**student.featurize(["a good movie", "x " * 30])).logits[0]
    return float((alone - batched).abs().max())


def test_pqrnn_with_window_one_ignores_padding():
    assert _padding_gap(1) < 1e-5


def test_pqrnn_default_window_ignores_padding():
    assert _padding_gap(2) < 1e-5


def test_pqrnn_save_load_round_trip(tmp_path):
    torch.manual_seed(0)
    student = build_student("pqrnn", {**TINY, "hash_seed": 7}, LABELS)
    texts = ["a good movie", "", "dull , dull , dull !", "words " * 80]
    student.save(tmp_path)
    loaded = load_student(tmp_path)
    assert loaded.cfg == student.cfg
    np.testing.assert_allclose(loaded.predict_proba(texts), student.predict_proba(texts), atol=1e-6)


def test_pqrnn_hidden_states_one_per_layer():
    student = build_student("pqrnn", TINY, LABELS).eval()
    out = student(**student.featurize(["a b c", "d"]))
    assert out.hidden_states is not None and len(out.hidden_states) == 2
    assert out.hidden_states[-1].shape == (2, 3, 16)
