"""The fused QRNN training kernel: same outputs and gradients as the tensor-op reference."""

from __future__ import annotations

import sys

import numpy as np
import pytest
import torch

from tinystudent.errors import TinyStudentError
from tinystudent.students import build_student, qrnn_fused
from tinystudent.students.qrnn import CHUNK, BiQRNN

pytest.importorskip("numba")
LABELS = ["neg", "pos"]
TINY = {"features": 64, "bottleneck": 16, "hidden": 8, "layers": 2, "dropout": 0.0}


def _pair(window: int) -> tuple[BiQRNN, BiQRNN]:
    torch.manual_seed(window)
    ref = BiQRNN(6, 5, window=window, fused=False)
    fused = BiQRNN(6, 5, window=window, fused=True)
    fused.load_state_dict(ref.state_dict())
    return ref, fused


@pytest.mark.parametrize("window", [1, 2, 3])
@pytest.mark.parametrize("length", [1, 2, CHUNK, CHUNK + 1, 3 * CHUNK + 5, 300])
def test_fused_layer_matches_outputs_and_gradients(window: int, length: int) -> None:
    ref, fused = _pair(window)
    g = torch.Generator().manual_seed(length)
    x = 2 * torch.randn(4, length, 6, generator=g)
    lengths = [length, max(1, length // 2), 1, max(1, length - 3)]
    mask = (torch.arange(length)[None, :] < torch.tensor(lengths)[:, None]).float()
    x = x * mask.unsqueeze(-1)  # padding is zero, as the pQRNN makes it
    weight = torch.randn(4, length, 10, generator=g)
    outs, grads = [], []
    for layer in (ref, fused):
        xi = x.clone().requires_grad_(True)
        h = layer(xi, mask)
        (h * weight).sum().backward()
        outs.append(h.detach())
        # padding's inputs get no gradient in the packed kernel; a pQRNN masks them anyway
        grads.append([xi.grad * mask.unsqueeze(-1)] + [p.grad for p in layer.parameters()])
    torch.testing.assert_close(outs[1], outs[0], atol=1e-5, rtol=1e-4)
    for got, want in zip(grads[1], grads[0]):
        torch.testing.assert_close(got, want, atol=1e-4, rtol=1e-3)


@pytest.mark.parametrize("threads", [1, 2])
def test_fused_gradients_pass_gradcheck_through_hard_resets(threads: int) -> None:
    """Gate values far past the clamp of log f (e^-5), zoneout and packed texts of lengths
    7, 5, 1 and 0: the kernel's gradient is the derivative of what it computes (finite
    differences, float32 tolerance), on one numba thread and on two."""
    g = torch.Generator().manual_seed(0)
    window, hidden = 2, 3
    starts = torch.tensor([0, 7, 12, 13, 13])
    blocks = 4 * torch.randn(13, 2 * window * 3 * hidden, generator=g)
    for k in range(2 * window):  # forget gates mostly below e^-5
        blocks[:, k * 9 + 3 : k * 9 + 6] -= 3.0
    zone = torch.rand(13, 2 * hidden, generator=g)
    blocks.requires_grad_(True)
    w = torch.randn(13, 2 * hidden, generator=g)

    def loss(b: torch.Tensor) -> torch.Tensor:
        return (qrnn_fused.FusedBiQRNN.apply(b, starts, zone, 0.3, window) * w).sum()

    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        loss(blocks).backward()
        eps = 1e-2
        flat = blocks.detach().clone().view(-1)
        for i in range(0, flat.numel(), 5):
            plus, minus = flat.clone(), flat.clone()
            plus[i] += eps
            minus[i] -= eps
            f = [loss(v.view(blocks.shape)) for v in (plus, minus)]
            want = float((f[0] - f[1]) / (2 * eps))
            assert abs(want - float(blocks.grad.view(-1)[i])) < 2e-2
    finally:
        torch.set_num_threads(before)


def test_a_mask_with_holes_runs_the_reference_ops() -> None:
    """The packed kernel knows whole texts only; a mask with a hole falls back, same result."""
    ref, fused = _pair(2)
    x = torch.randn(2, 5, 6)
    mask = torch.tensor([[1, 0, 1, 1, 0], [1, 1, 1, 1, 1]], dtype=torch.float32)
    assert qrnn_fused.pack(mask) is None
    torch.testing.assert_close(fused(x * mask[..., None], mask), ref(x * mask[..., None], mask))


def test_padding_gets_no_output() -> None:
    """Steps past a text's last real token are skipped, and their output is zero."""
    layer = BiQRNN(4, 3, window=2, fused=True)
    x = torch.randn(2, 6, 4)
    mask = torch.tensor([[1, 1, 1, 0, 0, 0], [1, 1, 1, 1, 1, 1]], dtype=torch.float32)
    x = (x * mask.unsqueeze(-1)).requires_grad_(True)
    out = layer(x, mask)
    out.sum().backward()
    h = out.detach()
    assert float(h[0, 3:].abs().max()) == 0.0 and float(h[1].abs().min()) > 0.0
    assert x.grad is not None and float(x.grad[0, :3].abs().min()) > 0.0
    assert float(x.grad[0, 3:].abs().max()) == 0.0  # packed: padding is not read


def _student(kernel: str) -> torch.nn.Module:
    torch.manual_seed(0)
    return build_student("pqrnn", {**TINY, "kernel": kernel}, LABELS)


def _words(n: int, seed: int) -> str:
    return " ".join(f"w{(seed * 7 + i * 3) % 23}" for i in range(n))


BATCHES = {  # word counts per text; max_tokens is 64, so 80 is cut
    "one token": [1, 1, 1],
    "short": [2, 3, 5, 4],
    "long": [64, 80, 63],
    "mixed": [1, 0, 7, 80, 12, 2],
}


@pytest.mark.parametrize("name", list(BATCHES))
def test_the_packed_student_matches_the_reference_in_eval(name: str) -> None:
    texts = [_words(n, i) for i, n in enumerate(BATCHES[name])]
    fused, ref = _student("fused").eval(), _student("reference").eval()
    feats = ref.featurize(texts)
    out_f, out_r = fused(**feats), ref(**feats)
    torch.testing.assert_close(out_f.logits, out_r.logits, atol=1e-5, rtol=0)
    for got, want in zip(out_f.hidden_states or (), out_r.hidden_states or ()):
        assert got.shape == want.shape  # padded back, zero on padding
        torch.testing.assert_close(got, want, atol=1e-5, rtol=0)


@pytest.mark.parametrize("name", list(BATCHES))
def test_pqrnn_training_step_is_the_same_with_either_kernel(name: str) -> None:
    texts = [_words(n, i) for i, n in enumerate(BATCHES[name])]
    y = torch.tensor([i % 2 for i in range(len(texts))])
    losses, grads = [], []
    for kernel in ("reference", "fused"):
        student = _student(kernel)
        student.train()
        for layer in student.qrnn:  # zoneout is random; compare the deterministic part
            layer.fwd.zoneout = layer.bwd.zoneout = 0.0
        loss = torch.nn.functional.cross_entropy(student(**student.featurize(texts)).logits, y)
        loss.backward()
        losses.append(float(loss.detach()))
        grads.append({n: p.grad.clone() for n, p in student.named_parameters()})
    assert abs(losses[0] - losses[1]) < 1e-5
    for name, want in grads[0].items():
        torch.testing.assert_close(grads[1][name], want, atol=1e-5, rtol=1e-3, msg=name)


def test_zoneout_runs_in_the_fused_kernel_and_only_in_training() -> None:
    student = _student("fused")
    feats = student.featurize(["a good movie and a fine plot"] * 4)
    student.train()
    a, b = student(**feats).logits, student(**feats).logits
    assert not torch.allclose(a, b)  # zoneout draws differ
    student.eval()
    np.testing.assert_allclose(
        student(**feats).logits.detach(),
        _student("reference").eval()(**feats).logits.detach(),
        atol=1e-5,
    )


def test_kernel_fused_without_numba_is_one_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "numba", None)
    monkeypatch.delitem(sys.modules, "tinystudent.students.qrnn_fused_kernels", raising=False)
    monkeypatch.setattr(qrnn_fused, "_kernels", None)
    with pytest.raises(TinyStudentError, match=r"tinystudent\[fast\]"):
        _student("fused")
    auto = _student("auto")  # falls back to the reference ops
    out = auto(**auto.featurize(["still works"])).logits
    assert out.shape == (1, 2) and torch.isfinite(out).all()


def test_fused_training_through_the_engine_matches_the_reference_and_repeats() -> None:
    """`train_student` with `kernel: fused`: without random draws (dropout and zoneout 0) it
    ends where the reference ends, to float32 rounding; with them, two runs of one seed end
    with the same weights, bit for bit."""
    from tinystudent.train import TrainConfig, train_student

    texts = [_words(n, i) for i, n in enumerate([1, 0, 3, 9, 30, 80, 2, 5] * 4)]
    labels = [i % 2 for i in range(len(texts))]
    probs = np.eye(2, dtype=np.float32)[labels]
    cfg = TrainConfig(epochs=2, batch_size=8, seed=0)

    def trained(kernel: str, draws: bool) -> dict[str, torch.Tensor]:
        torch.manual_seed(0)
        options = {**TINY, "kernel": kernel, "dropout": 0.1 if draws else 0.0}
        student = build_student("pqrnn", {**options, "zoneout": 0.1 if draws else 0.0}, LABELS)
        train_student(student, texts, probs, labels, cfg)
        return {k: v.clone() for k, v in student.state_dict().items()}

    ref, fused = trained("reference", False), trained("fused", False)
    for name, want in ref.items():
        torch.testing.assert_close(fused[name], want, atol=1e-4, rtol=1e-3, msg=name)
    a, b = trained("fused", True), trained("fused", True)
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not all(torch.equal(a[k], fused[k]) for k in a)  # the draws did something


def test_the_serial_kernels_match_the_parallel_ones() -> None:
    """One torch thread runs the serial pair in the calling thread; it must compute what
    the parallel pair computes (same loops, another error model)."""
    assert qrnn_fused.available()
    k = qrnn_fused._kernels
    g = np.random.default_rng(0)
    window, hidden = 2, 4
    starts = np.array([0, 7, 12, 13, 13], np.int64)
    blocks = g.standard_normal((13, 2 * window * 3 * hidden)).astype(np.float32)
    zone = g.random((13, 2 * hidden)).astype(np.float32)
    dh = g.standard_normal((13, 2 * hidden)).astype(np.float32)
    outs = []
    for fwd, bwd in ((k.forward, k.backward), (k.forward_serial, k.backward_serial)):
        h, c = np.empty((13, 2 * hidden), np.float32), np.empty((13, 2 * hidden), np.float32)
        act, db = np.empty((13, 6 * hidden), np.float32), np.full_like(blocks, np.nan)
        fwd(blocks, starts, zone, True, 0.3, window, hidden, h, c, act)
        bwd(act, starts, zone, True, 0.3, window, hidden, c, dh, db)
        outs.append((h, c, act, db))
    for got, want in zip(outs[1], outs[0]):
        np.testing.assert_allclose(got, want, atol=1e-6, rtol=1e-5)
    assert np.isfinite(outs[1][3]).all()  # every block's gradient written


def test_kernel_draws_follow_torch_seed_and_have_the_right_law() -> None:
    torch.manual_seed(3)
    a = qrnn_fused.uniform(200, 100)
    torch.manual_seed(3)
    b = qrnn_fused.uniform(200, 100)
    assert torch.equal(a, b) and not torch.equal(a, qrnn_fused.uniform(200, 100))
    assert float(a.min()) >= 0.0 and float(a.max()) < 1.0 and abs(float(a.mean()) - 0.5) < 0.01
    x = torch.ones(400, 100)
    y = qrnn_fused.dropout(x, 0.25)
    torch.testing.assert_close(torch.unique(y), torch.tensor([0.0, 4.0 / 3.0]))
    assert abs(float((y == 0).float().mean()) - 0.25) < 0.01


@pytest.mark.parametrize("name", list(BATCHES))
def test_the_packed_features_train_like_the_padded_ones(name: str) -> None:
    """In training the fused student featurizes to the packed form (distinct tokens once);
    with the same draws (dropout and zoneout on) its outputs and gradients are the padded
    batch's, to float32 rounding. Eval mode keeps the two padded inputs export reads."""
    from tinystudent.students.pqrnn import unpacked_projection

    texts = [_words(n, i) for i, n in enumerate(BATCHES[name])]
    options = {**TINY, "kernel": "fused", "dropout": 0.2, "zoneout": 0.2}
    results = []
    for packed in (True, False):
        torch.manual_seed(0)
        student = build_student("pqrnn", options, LABELS).train()
        feats = student.featurize(texts)
        assert ("tokens" in feats) is True
        if not packed:
            feats = {"projection": unpacked_projection(feats), "mask": feats["mask"]}
            want = student.projection.batch(texts, student.cfg.max_tokens, True)
            assert np.array_equal(feats["projection"].numpy(), want[0])
        torch.manual_seed(1)
        out = student(**feats)
        out.logits.sum().backward()
        grads = {n: p.grad.clone() for n, p in student.named_parameters()}
        results.append((out, grads))
    (a, ga), (b, gb) = results
    torch.testing.assert_close(a.logits, b.logits, atol=1e-6, rtol=0)
    for x, y in zip(a.hidden_states or (), b.hidden_states or ()):
        assert x.shape == y.shape
        torch.testing.assert_close(x, y, atol=1e-6, rtol=0)
    for n, want in gb.items():
        torch.testing.assert_close(ga[n], want, atol=1e-5, rtol=1e-4, msg=n)
    student.eval()
    assert set(student.featurize(texts)) == {"projection", "mask"}
    ref = _student("reference")
    assert set(ref.train().featurize(texts)) == {"projection", "mask"}


def test_packed_features_reach_the_reference_ops_when_the_kernel_cannot_run() -> None:
    texts = [_words(n, i) for i, n in enumerate(BATCHES["mixed"])]
    fused = _student("fused").train()
    feats = fused.featurize(texts)
    ref = _student("reference").eval()
    fused.eval()
    torch.testing.assert_close(
        ref(**feats).logits, ref(**ref.featurize(texts)).logits, atol=1e-6, rtol=0
    )
    torch.testing.assert_close(fused(**feats).logits, ref(**feats).logits, atol=1e-5, rtol=0)


def test_packed_pooling_is_the_masked_mean_and_max_with_their_gradients() -> None:
    """`packed_pool` on the real rows gives the padded batch's masked mean + max and the
    same gradients; a text without rows gets mean 0, max -inf and no gradient."""
    g = torch.Generator().manual_seed(0)
    lengths = [3, 1, 0, 7]
    starts = torch.tensor([0, 3, 4, 4, 11])
    h = torch.randn(11, 5, generator=g, dtype=torch.float32, requires_grad=True)
    pooled = qrnn_fused.packed_pool(h, starts)
    mask = torch.zeros(4, 7)
    for b, n in enumerate(lengths):
        mask[b, :n] = 1.0
    rows = mask.reshape(-1).nonzero().squeeze(1)
    padded = qrnn_fused.unpack(h, rows, mask.shape)
    m = mask.unsqueeze(-1)
    mean = (padded * m).sum(1) / m.sum(1).clamp(min=1.0)
    mx = padded.masked_fill(m == 0, float("-inf")).amax(1)
    want = torch.cat([mean, mx], -1)
    torch.testing.assert_close(pooled, want, atol=1e-6, rtol=0)
    weights = torch.randn(4, 10, generator=g)
    keep = torch.isfinite(want)
    (grad,) = torch.autograd.grad((pooled[keep] * weights[keep]).sum(), h)
    (grad_want,) = torch.autograd.grad((want[keep] * weights[keep]).sum(), h)
    torch.testing.assert_close(grad, grad_want, atol=1e-6, rtol=0)
