"""numba kernels behind `qrnn_fused.FusedBiQRNN` (see there for the recurrence).

A batch is packed: its real tokens only, concatenated, text b in rows
`starts[b]:starts[b + 1]`. blocks [N, G] are one BiQRNN layer's gate products in the light
runtime's layout (G = 2 directions x window x 3H; block (d, k) is what the input at offset k
contributes to direction d's pre-activations z, f, o; the bias sits in block k = 0).
zone [N, 2H] holds zoneout's uniform draws when `has_zone` (a unit updates where its draw is
>= `rate`). A window reaching past either end of a text reads nothing, as the reference
reads the zeros of its padding.

Each (text, direction) pair is independent, so `forward` / `backward` run them in parallel,
on as many numba threads as the caller sets. With one thread that is still the fastest form
measured: the same loops compiled as plain functions ran 1.5x (forward) to 4x (backward)
slower, vectorised less well (bench notes in docs/serve.md).
"""

from __future__ import annotations

import numba
import numpy as np
from numba import prange

from tinystudent.inference.fused_kernels import MIN_F, _exp


@numba.njit(inline="always", fastmath=True)
def _preact(blocks, start, end, t, d, window, g3, pre, e, bits):
    """e = exp([2z, -f, -o]) of direction d's window sum at step t."""
    pre[:] = 0.0
    for k in range(window):
        s = t - k if d == 0 else t + k
        if start <= s < end:
            off = (d * window + k) * g3
            for j in range(g3):
                pre[j] += blocks[s, off + j]
    hidden = g3 // 3
    for j in range(hidden):
        pre[j] *= np.float32(2.0)
    for j in range(hidden, g3):
        pre[j] = -pre[j]
    _exp(pre, e, bits)


@numba.njit(inline="always")
def _update(zone, has_zone, rate, t, col, hidden, mt):
    """mt [H]: zoneout's keep decision at one step (1: the unit updates)."""
    for j in range(hidden):
        keep = (not has_zone) or zone[t, col + j] >= rate
        mt[j] = np.float32(1.0) if keep else np.float32(0.0)


@numba.njit(inline="always", fastmath=True)
def _forward_one(blocks, starts, zone, has_zone, rate, window, hidden, item, h, c, act):
    b, d = item // 2, item % 2
    start, end = starts[b], starts[b + 1]
    g3, col = 3 * hidden, d * hidden
    one, two = np.float32(1.0), np.float32(2.0)
    pre, e = np.empty(g3, np.float32), np.empty(g3, np.float32)
    bits, mt = np.empty(g3, np.int32), np.empty(hidden, np.float32)
    state = np.zeros(hidden, np.float32)
    for i in range(end - start):
        t = start + i if d == 0 else end - 1 - i
        _preact(blocks, start, end, t, d, window, g3, pre, e, bits)
        _update(zone, has_zone, rate, t, col, hidden, mt)
        act[t, d * g3 : (d + 1) * g3] = e
        for j in range(hidden):
            sig_f = one / (one + e[hidden + j])
            keep = e[hidden + j] * sig_f  # sigmoid(-f)
            tz = one - two / (one + e[j])
            forget = one + mt[j] * (max(sig_f, MIN_F) - one)
            state[j] = forget * state[j] + mt[j] * keep * tz
            c[t, col + j] = state[j]
            h[t, col + j] = state[j] / (one + e[2 * hidden + j])


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
def _backward_one(act, starts, zone, has_zone, rate, window, hidden, c, dh, item, dblocks):
    b, d = item // 2, item % 2
    start, end = starts[b], starts[b + 1]
    g3, col = 3 * hidden, d * hidden
    one, two = np.float32(1.0), np.float32(2.0)
    mt = np.empty(hidden, np.float32)
    dg, cp = np.empty(g3, np.float32), np.zeros(hidden, np.float32)
    carry = np.zeros(hidden, np.float32)  # F_{t+1} dc_{t+1}
    _zero_unread(dblocks, start, end, d, window, g3)
    for i in range(end - start):
        t = end - 1 - i if d == 0 else start + i
        prev = t - 1 if d == 0 else t + 1
        e = act[t, d * g3 : (d + 1) * g3]
        _update(zone, has_zone, rate, t, col, hidden, mt)
        has_prev = start <= prev < end  # branches out of the unit loop, so it vectorises
        for j in range(hidden):
            cp[j] = c[prev, col + j] if has_prev else np.float32(0.0)
        ct, dht = c[t, col : col + hidden], dh[t, col : col + hidden]
        for j in range(hidden):
            sig_f = one / (one + e[hidden + j])
            keep = e[hidden + j] * sig_f
            tz = one - two / (one + e[j])
            so = one / (one + e[2 * hidden + j])
            dc = carry[j] + dht[j] * so
            d_forget = dc * cp[j] * sig_f * keep if sig_f > MIN_F else np.float32(0.0)
            dg[j] = dc * mt[j] * keep * (one - tz * tz)
            dg[hidden + j] = mt[j] * (d_forget - dc * tz * keep * sig_f)
            dg[2 * hidden + j] = dht[j] * ct[j] * so * (one - so)
            carry[j] = (one + mt[j] * (max(sig_f, MIN_F) - one)) * dc
        for k in range(window):  # step t's gates read block k of token t -/+ k
            s = t - k if d == 0 else t + k
            if start <= s < end:
                off = (d * window + k) * g3
                for j in range(g3):
                    dblocks[s, off + j] = dg[j]


@numba.njit(parallel=True, fastmath=True, cache=True)
def forward(blocks, starts, zone, has_zone, rate, window, hidden, h, c, act):
    """h [N, 2H] (forward units, then backward), the states c [N, 2H] and the gates'
    exponentials act [N, 2 x 3H], which spare the backward pass their recompute."""
    for item in prange(2 * (starts.shape[0] - 1)):
        _forward_one(blocks, starts, zone, has_zone, rate, window, hidden, item, h, c, act)


@numba.njit(parallel=True, fastmath=True, cache=True)
def backward(act, starts, zone, has_zone, rate, window, hidden, c, dh, dblocks):
    """dblocks [N, G], the gradient of the gate products, from dh [N, 2H]."""
    for item in prange(2 * (starts.shape[0] - 1)):
        _backward_one(act, starts, zone, has_zone, rate, window, hidden, c, dh, item, dblocks)
