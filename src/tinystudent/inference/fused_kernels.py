"""numba kernels of the fused pQRNN: QRNN gates and fo-pool over ragged batches.

A batch is its real tokens only, concatenated: `offsets[b]:offsets[b+1]` are text b's rows,
so no step is spent on padding.

`qrnn_layer` walks each text forwards and backwards; at each step it sums the gate blocks of
the window's neighbours (`rows[idx[t -/+ k]]`, block k) into z, f, o and updates the state:
f = max(sigmoid(f), e^-5) (the reference's clamp of log f), c_t = f c_{t-1} + sigmoid(-f)
tanh(z), h_t = sigmoid(o) c_t. Everything stays in one text's few kilobytes, and the three
exponentials per unit are a polynomial (`_exp`) the compiler vectorises.

`pool` is the student's mean + max over each text's tokens. Importing this module compiles
nothing; the first call does (cached on disk where the package directory is writable).
"""

from __future__ import annotations

import math

import numba
import numpy as np
from numba import prange

CLIP = np.float32(40.0)
MIN_F = np.float32(math.exp(-5.0))  # qrnn.MIN_LOG_F = -5
LOG2E = np.float32(1.4426950408889634)
LN2_HI, LN2_LO = np.float32(0.693359375), np.float32(-2.12194440e-4)


@numba.njit(inline="always", fastmath=True)
def _exp(x, out, bits):
    """out = exp(x) elementwise, for float32 vectors (Cephes expf, ~1 ulp: x = n ln2 + r, a
    degree-5 polynomial on r, 2^n written as exponent bits). Plain arithmetic, so the loops
    vectorise, where a call to libm's exp per element would not. |x| is clipped to CLIP."""
    scale = bits.view(np.float32)
    for j in range(x.shape[0]):
        v = min(max(x[j], -CLIP), CLIP)
        n = math.floor(v * LOG2E + np.float32(0.5))
        r = v - n * LN2_HI - n * LN2_LO
        p = np.float32(1.9875691500e-4)
        p = p * r + np.float32(1.3981999507e-3)
        p = p * r + np.float32(8.3334519073e-3)
        p = p * r + np.float32(4.1665795894e-2)
        p = p * r + np.float32(1.6666665459e-1)
        p = p * r + np.float32(5.0000001201e-1)
        out[j] = p * r * r + r + np.float32(1.0)
        bits[j] = (np.int32(n) + np.int32(127)) << np.int32(23)
    for j in range(x.shape[0]):
        out[j] *= scale[j]


@numba.njit(inline="always", fastmath=True)
def _text_layer(rows, idx, start, end, window, hidden, out):
    """One text's BiQRNN layer: rows start..end of `out`."""
    g3 = 3 * hidden
    one, two = np.float32(1.0), np.float32(2.0)
    pre = np.empty(g3, dtype=np.float32)
    e = np.empty(g3, dtype=np.float32)
    bits = np.empty(g3, dtype=np.int32)
    c = np.empty(hidden, dtype=np.float32)
    ez, ef, eo = e[:hidden], e[hidden : 2 * hidden], e[2 * hidden :]
    for d in range(2):
        c[:] = 0.0
        for i in range(end - start):
            t = start + i if d == 0 else end - 1 - i
            pre[:] = 0.0
            for k in range(window):
                s = t - k if d == 0 else t + k
                if start <= s < end:
                    block = rows[idx[s], (d * window + k) * g3 : (d * window + k + 1) * g3]
                    for j in range(g3):
                        pre[j] += block[j]
            for j in range(hidden):  # exp(2z) for tanh z, exp(-f), exp(-o) for sigmoids
                pre[j] *= two
            for j in range(hidden, g3):
                pre[j] = -pre[j]
            _exp(pre, e, bits)
            h = out[t, d * hidden : (d + 1) * hidden]
            for j in range(hidden):
                sig_f = one / (one + ef[j])
                keep = ef[j] * sig_f  # sigmoid(-f)
                c[j] = max(sig_f, MIN_F) * c[j] + keep * (one - two / (one + ez[j]))
                h[j] = c[j] / (one + eo[j])


@numba.njit(parallel=True, fastmath=True, cache=True)
def qrnn_layer(rows, idx, offsets, window, hidden, out):
    """One BiQRNN layer. rows [R, 2*window*3H] gate blocks, idx [T] the row of each token;
    out [T, 2H] (forward units, then backward). Texts run in parallel."""
    for b in prange(offsets.shape[0] - 1):
        _text_layer(rows, idx, offsets[b], offsets[b + 1], window, hidden, out)


@numba.njit(inline="always")
def _text_pool(h, start, end, out_b):
    width = h.shape[1]
    mean, mx = out_b[:width], out_b[width:]
    mean[:] = 0.0
    mx[:] = -np.inf
    for t in range(start, end):
        for j in range(width):
            mean[j] += h[t, j]
            mx[j] = max(mx[j], h[t, j])
    for j in range(width):
        mean[j] /= end - start


@numba.njit(parallel=True, cache=True)
def pool(h, offsets, out):
    """h [T, D] -> out [B, 2D]: mean then max over each text's tokens."""
    for b in prange(offsets.shape[0] - 1):
        _text_pool(h, offsets[b], offsets[b + 1], out[b])


@numba.njit(fastmath=True, cache=True)
def qrnn_layer_one(rows, idx, offsets, window, hidden, out):
    """`qrnn_layer` in the calling thread, for one text: a parallel launch costs more than a
    short text's whole recurrence under some threading layers (numba's workqueue hands even a
    one-thread region to a worker and waits)."""
    for b in range(offsets.shape[0] - 1):
        _text_layer(rows, idx, offsets[b], offsets[b + 1], window, hidden, out)


@numba.njit(cache=True)
def pool_one(h, offsets, out):
    """`pool` in the calling thread, for one text."""
    for b in range(offsets.shape[0] - 1):
        _text_pool(h, offsets[b], offsets[b + 1], out[b])
