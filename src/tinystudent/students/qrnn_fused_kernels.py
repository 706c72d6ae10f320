"""numba kernels behind `qrnn_fused.FusedFoPool` (see there for the recurrence).

g [B, L, 3H] gate pre-activations (z, f, o), mask [B, L] (1 on real tokens) and, when
`has_zone`, zone [B, L, H] the zoneout draws (True: the unit updates); the state mask is their
product. The three exponentials per unit and step use the light runtime's vectorisable `_exp`.
"""

from __future__ import annotations

import numba
import numpy as np
from numba import prange

from tinystudent.inference.fused_kernels import MIN_F, _exp


@numba.njit(inline="always", fastmath=True)
def _gates(g, hidden, pre, e, bits):
    """e = exp([2z, -f, -o]) of one step's pre-activations g [3H]."""
    for j in range(hidden):
        pre[j] = np.float32(2.0) * g[j]
    for j in range(hidden, 3 * hidden):
        pre[j] = -g[j]
    _exp(pre, e, bits)


@numba.njit(inline="always")
def _state_mask(mask_bt, zone, has_zone, b, t, out):
    for j in range(out.shape[0]):
        out[j] = mask_bt * np.float32(zone[b, t, j]) if has_zone else mask_bt


@numba.njit(parallel=True, fastmath=True, cache=True)
def forward(g, mask, zone, has_zone, reverse, h, c):
    """h = sigmoid(o) c and the states c, both [B, L, H]."""
    n, length, g3 = g.shape
    hidden = g3 // 3
    one, two = np.float32(1.0), np.float32(2.0)
    for b in prange(n):
        pre = np.empty(g3, dtype=np.float32)
        e = np.empty(g3, dtype=np.float32)
        bits = np.empty(g3, dtype=np.int32)
        state = np.zeros(hidden, dtype=np.float32)
        mt = np.empty(hidden, dtype=np.float32)
        for i in range(length):
            t = length - 1 - i if reverse else i
            _gates(g[b, t], hidden, pre, e, bits)
            _state_mask(mask[b, t], zone, has_zone, b, t, mt)
            ct, ht = c[b, t], h[b, t]
            for j in range(hidden):
                sig_f = one / (one + e[hidden + j])
                keep = e[hidden + j] * sig_f
                tz = one - two / (one + e[j])
                forget = one + mt[j] * (max(sig_f, MIN_F) - one)
                state[j] = forget * state[j] + mt[j] * keep * tz
                ct[j] = state[j]
                ht[j] = state[j] / (one + e[2 * hidden + j])


@numba.njit(parallel=True, fastmath=True, cache=True)
def backward(g, mask, zone, has_zone, c, dh, reverse, dg):
    """dg [B, L, 3H], the gradient of the pre-activations, from dh [B, L, H]."""
    n, length, g3 = g.shape
    hidden = g3 // 3
    one, two = np.float32(1.0), np.float32(2.0)
    for b in prange(n):
        pre = np.empty(g3, dtype=np.float32)
        e = np.empty(g3, dtype=np.float32)
        bits = np.empty(g3, dtype=np.int32)
        carry = np.zeros(hidden, dtype=np.float32)  # F_{t+1} dc_{t+1}
        mt = np.empty(hidden, dtype=np.float32)
        for i in range(length):
            t = i if reverse else length - 1 - i
            prev = t + 1 if reverse else t - 1
            _gates(g[b, t], hidden, pre, e, bits)
            _state_mask(mask[b, t], zone, has_zone, b, t, mt)
            ct, dht, dgt = c[b, t], dh[b, t], dg[b, t]
            for j in range(hidden):
                sig_f = one / (one + e[hidden + j])
                keep = e[hidden + j] * sig_f
                tz = one - two / (one + e[j])
                so = one / (one + e[2 * hidden + j])
                c_prev = c[b, prev, j] if 0 <= prev < length else np.float32(0.0)
                dc = carry[j] + dht[j] * so
                d_forget = dc * c_prev * sig_f * keep if sig_f > MIN_F else np.float32(0.0)
                dgt[j] = dc * mt[j] * keep * (one - tz * tz)
                dgt[hidden + j] = mt[j] * (d_forget - dc * tz * keep * sig_f)
                dgt[2 * hidden + j] = dht[j] * ct[j] * so * (one - so)
                carry[j] = (one + mt[j] * (max(sig_f, MIN_F) - one)) * dc
