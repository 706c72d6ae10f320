"""numba kernels behind `qrnn_fused.FusedBiQRNN` (see there for the recurrence).

A batch is packed: its real tokens only, concatenated, text b in rows
`starts[b]:starts[b + 1]`. blocks [N, G] are one BiQRNN layer's gate products in the light
runtime's layout (G = 2 directions x window x 3H; block (d, k) is what the input at offset k
contributes to direction d's pre-activations z, f, o; the bias sits in block k = 0).
zone [N, 2H] holds zoneout's uniform draws when `has_zone` (a unit updates where its draw is
>= `rate`). A window reaching past either end of a text reads nothing, as the reference
reads the zeros of its padding.

Each (text, direction) pair is independent: `forward` / `backward` run them in parallel on
as many numba threads as the caller sets, `forward_serial` / `backward_serial` in the
calling thread. One torch thread (the training default) takes the serial pair: numba's
workqueue hands even a one-thread parallel region to a worker thread and waits for it, and
on a busy machine that handoff cost a fused step several times the kernels' own time. The
serial pair compiles with numpy's error model: Python's (the njit default) guards every
division with a zero check, which kept the unit loops from vectorising (1.5-4x slower; the
parallel form always used numpy's).

`pool_forward` / `pool_backward` are the student's mean + max pooling over each text's rows
of the packed last layer, and its gradient (`qrnn_fused.PackedPool`).

`uniform` / `keep_mask` are a counter-based generator (splitmix64 of seed + index) for
dropout and zoneout draws, ~15x faster than `torch.rand` on CPU; the seed comes from torch's
generator, so `torch.manual_seed` still fixes a run.
"""

from __future__ import annotations

import numba
import numpy as np
from numba import prange

from tinystudent.inference.fused_kernels import MIN_F, _exp

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_MIX1, _MIX2 = np.uint64(0xBF58476D1CE4E5B9), np.uint64(0x94D049BB133111EB)


@numba.njit(inline="always", fastmath=True)
def _preact(blocks, start, end, t, d, window, g3, pre, e, bits):
    """e = exp([2z, -f, -o]) of direction d's window sum at step t."""
    hidden = g3 // 3
    for j in range(g3):
        pre[j] = 0.0
    for k in range(window):
        s = t - k if d == 0 else t + k
        if start <= s < end:
            off = (d * window + k) * g3
            row = blocks[s, off : off + g3]
            for j in range(g3):
                pre[j] += row[j]
    for j in range(hidden):
        pre[j] *= np.float32(2.0)
    gates = pre[hidden:g3]
    for j in range(g3 - hidden):
        gates[j] = -gates[j]
    _exp(pre, e, bits)


@numba.njit(inline="always")
def _update(zone, has_zone, rate, t, col, hidden, mt):
    """mt [H]: zoneout's keep decision at one step (1: the unit updates)."""
    if has_zone:
        draws, r = zone[t, col : col + hidden], np.float32(rate)
        for j in range(hidden):
            mt[j] = np.float32(1.0) if draws[j] >= r else np.float32(0.0)
    else:
        for j in range(hidden):
            mt[j] = np.float32(1.0)


@numba.njit(inline="always", fastmath=True)
def _forward_one(blocks, starts, zone, has_zone, rate, window, hidden, item, h, c, act, scratch):
    b, d = item // 2, item % 2
    start, end = starts[b], starts[b + 1]
    g3, col = 3 * hidden, d * hidden
    one, two = np.float32(1.0), np.float32(2.0)
    pre, e, bits, mt, state = scratch
    for j in range(hidden):
        state[j] = 0.0
    # Row and gate slices indexed from 0: 17% faster than offsets like `col + j` (an ad hoc
    # timing; numba's negative-index handling of such offsets is the likely cause).
    ez, ef, eo = e[:hidden], e[hidden : 2 * hidden], e[2 * hidden : g3]
    for i in range(end - start):
        t = start + i if d == 0 else end - 1 - i
        _preact(blocks, start, end, t, d, window, g3, pre, e, bits)
        _update(zone, has_zone, rate, t, col, hidden, mt)
        act_t = act[t, d * g3 : (d + 1) * g3]
        for j in range(g3):
            act_t[j] = e[j]
        c_t, h_t = c[t, col : col + hidden], h[t, col : col + hidden]
        for j in range(hidden):
            sig_f = one / (one + ef[j])
            keep = ef[j] * sig_f  # sigmoid(-f)
            tz = one - two / (one + ez[j])
            forget = one + mt[j] * (max(sig_f, MIN_F) - one)
            s = forget * state[j] + mt[j] * keep * tz
            state[j] = s
            c_t[j] = s
            h_t[j] = s / (one + eo[j])


@numba.njit(inline="always")
def _forward_scratch(hidden):
    g3 = 3 * hidden
    return (
        np.empty(g3, np.float32),
        np.empty(g3, np.float32),
        np.empty(g3, np.int32),
        np.empty(hidden, np.float32),
        np.empty(hidden, np.float32),
    )


@numba.njit(inline="always")
def _zero_unread(dblocks, start, end, d, window, g3):
    """Zero the blocks no step of the text reads: block k of token s feeds step s + k
    (forward direction) or s - k (backward), which must lie inside the text."""
    for k in range(window):
        off = (d * window + k) * g3
        lo, hi = (end - k, end) if d == 0 else (start, start + k)
        for s in range(max(lo, start), min(hi, end)):
            for j in range(g3):
                dblocks[s, off + j] = 0.0


@numba.njit(inline="always", fastmath=True)
def _backward_one(act, starts, zone, has_zone, rate, window, hidden, c, dh, item, dblocks, scratch):
    b, d = item // 2, item % 2
    start, end = starts[b], starts[b + 1]
    g3, col, a0 = 3 * hidden, d * hidden, d * 3 * hidden
    one, two = np.float32(1.0), np.float32(2.0)
    mt, dg, cp, carry = scratch  # carry: F_{t+1} dc_{t+1}
    for j in range(hidden):
        carry[j] = 0.0
    _zero_unread(dblocks, start, end, d, window, g3)
    for i in range(end - start):
        t = end - 1 - i if d == 0 else start + i
        prev = t - 1 if d == 0 else t + 1
        _update(zone, has_zone, rate, t, col, hidden, mt)
        if start <= prev < end:  # out of the unit loop, so it vectorises
            for j in range(hidden):
                cp[j] = c[prev, col + j]
        else:
            for j in range(hidden):
                cp[j] = 0.0
        for j in range(hidden):
            ef = act[t, a0 + hidden + j]
            sig_f = one / (one + ef)
            keep = ef * sig_f
            tz = one - two / (one + act[t, a0 + j])
            so = one / (one + act[t, a0 + 2 * hidden + j])
            dht = dh[t, col + j]
            dc = carry[j] + dht * so
            d_forget = dc * cp[j] * sig_f * keep if sig_f > MIN_F else np.float32(0.0)
            dg[j] = dc * mt[j] * keep * (one - tz * tz)
            dg[hidden + j] = mt[j] * (d_forget - dc * tz * keep * sig_f)
            dg[2 * hidden + j] = dht * c[t, col + j] * so * (one - so)
            carry[j] = (one + mt[j] * (max(sig_f, MIN_F) - one)) * dc
        for k in range(window):  # step t's gates read block k of token t -/+ k
            s = t - k if d == 0 else t + k
            if start <= s < end:
                off = (d * window + k) * g3
                for j in range(g3):
                    dblocks[s, off + j] = dg[j]


@numba.njit(inline="always")
def _backward_scratch(hidden):
    return (
        np.empty(hidden, np.float32),
        np.empty(3 * hidden, np.float32),
        np.empty(hidden, np.float32),
        np.empty(hidden, np.float32),
    )


@numba.njit(parallel=True, fastmath=True, cache=True)
def forward(blocks, starts, zone, has_zone, rate, window, hidden, h, c, act):
    """h [N, 2H] (forward units, then backward), the states c [N, 2H] and the gates'
    exponentials act [N, 2 x 3H], which spare the backward pass their recompute."""
    for item in prange(2 * (starts.shape[0] - 1)):
        scratch = _forward_scratch(hidden)
        _forward_one(blocks, starts, zone, has_zone, rate, window, hidden, item, h, c, act, scratch)


@numba.njit(fastmath=True, error_model="numpy", cache=True)
def forward_serial(blocks, starts, zone, has_zone, rate, window, hidden, h, c, act):
    """`forward` in the calling thread."""
    scratch = _forward_scratch(hidden)
    for item in range(2 * (starts.shape[0] - 1)):
        _forward_one(blocks, starts, zone, has_zone, rate, window, hidden, item, h, c, act, scratch)


@numba.njit(parallel=True, fastmath=True, cache=True)
def backward(act, starts, zone, has_zone, rate, window, hidden, c, dh, dblocks):
    """dblocks [N, G], the gradient of the gate products, from dh [N, 2H]."""
    for item in prange(2 * (starts.shape[0] - 1)):
        scratch = _backward_scratch(hidden)
        _backward_one(
            act, starts, zone, has_zone, rate, window, hidden, c, dh, item, dblocks, scratch
        )


@numba.njit(fastmath=True, error_model="numpy", cache=True)
def backward_serial(act, starts, zone, has_zone, rate, window, hidden, c, dh, dblocks):
    """`backward` in the calling thread."""
    scratch = _backward_scratch(hidden)
    for item in range(2 * (starts.shape[0] - 1)):
        _backward_one(
            act, starts, zone, has_zone, rate, window, hidden, c, dh, item, dblocks, scratch
        )


@numba.njit(inline="always")
def _draw(seed, i):
    """A uniform float32 in [0, 1) from (seed, i): splitmix64's output function, 24 bits."""
    z = seed + np.uint64(i) * _GOLDEN
    z = (z ^ (z >> np.uint64(30))) * _MIX1
    z = (z ^ (z >> np.uint64(27))) * _MIX2
    z = z ^ (z >> np.uint64(31))
    return np.float32(z >> np.uint64(40)) * np.float32(1.0 / 16777216.0)


@numba.njit(error_model="numpy", cache=True)
def uniform(seed, out):
    """Fill the contiguous float32 array `out` with uniform [0, 1) draws of stream `seed`."""
    flat, s = out.reshape(-1), np.uint64(seed)
    for i in range(flat.shape[0]):
        flat[i] = _draw(s, i)


@numba.njit(error_model="numpy", cache=True)
def keep_mask(seed, rate, out):
    """Inverted dropout's multiplier: 1 / (1 - rate) where the draw is >= rate, else 0."""
    flat, s = out.reshape(-1), np.uint64(seed)
    scale, zero = np.float32(1.0 / (1.0 - rate)), np.float32(0.0)
    r = np.float32(rate)
    for i in range(flat.shape[0]):
        flat[i] = scale if _draw(s, i) >= r else zero


@numba.njit(fastmath=True, error_model="numpy", cache=True)
def pool_forward(h, starts, out, arg):
    """out [B, 2W]: each text's mean, then max, over its rows of h [N, W]; arg [B, W]: the
    row each max came from (the first, on ties). A text without rows gets the padded
    pooling's values: mean 0, max -inf (arg -1)."""
    width = h.shape[1]
    for b in range(starts.shape[0] - 1):
        start, end = starts[b], starts[b + 1]
        mean, mx, am = out[b, :width], out[b, width:], arg[b]
        if end == start:
            for j in range(width):
                mean[j] = 0.0
                mx[j] = -np.inf
                am[j] = -1
            continue
        first = h[start]
        for j in range(width):
            mean[j] = 0.0
            mx[j] = first[j]
            am[j] = start
        for t in range(start, end):
            row = h[t]
            for j in range(width):
                mean[j] += row[j]
            for j in range(width):
                if row[j] > mx[j]:
                    mx[j] = row[j]
                    am[j] = t
        n = np.float32(end - start)
        for j in range(width):
            mean[j] /= n


@numba.njit(fastmath=True, error_model="numpy", cache=True)
def pool_backward(grad, starts, arg, dh):
    """dh [N, W] from the pooled gradient [B, 2W]: the mean's share to every row of the
    text, the max's to the row it came from."""
    width = dh.shape[1]
    for b in range(starts.shape[0] - 1):
        start, end = starts[b], starts[b + 1]
        g_mean, g_max = grad[b, :width], grad[b, width:]
        if end == start:
            continue
        n = np.float32(end - start)
        for t in range(start, end):
            row = dh[t]
            for j in range(width):
                row[j] = g_mean[j] / n
        for j in range(width):
            dh[arg[b, j], j] += g_max[j]
