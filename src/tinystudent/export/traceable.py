"""Graph-friendly stand-ins for the few student ops that do not trace with dynamic shapes.

`qrnn.fo_pool` loops over chunks of 16 steps in Python: a trace would unroll that loop for
the example's length and the graph would only accept that length. `fo_pool_traceable` solves
the same recurrence with no Python loop: the sequence is padded to whole chunks and reshaped
to [B, N, CHUNK, H]; within a chunk the closed form is the one `fo_pool` uses (cumulative
sums, from a zero state); the chunk-to-chunk carry, a short linear recurrence over N chunks,
becomes one product with the lower-triangular matrix exp(S_k - S_j) (j <= k), S the running
sum of each chunk's total log forget gate. Every exponent there is <= 0, so nothing
overflows, and the result equals `fo_pool` up to float rounding (~1e-7, checked in tests).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
from torch.nn import functional as F

from tinystudent.students import qrnn


def fo_pool_traceable(log_f: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
    """Solve c_t = f_t c_{t-1} + u_t (c_0 = 0) like `qrnn.fo_pool`, traceable for any length."""
    chunk = qrnn.CHUNK
    log_f = log_f.clamp(min=qrnn.MIN_LOG_F)
    b, length, h = u.shape
    padded = (length + chunk - 1) // chunk * chunk
    # Padding steps have f = 1 and no input; they come after every real step, so they change
    # nothing, and they are cut off at the end.
    lf = F.pad(log_f, (0, 0, 0, padded - length)).reshape(b, -1, chunk, h)
    uu = F.pad(u, (0, 0, 0, padded - length)).reshape(b, -1, chunk, h)
    a = torch.cumsum(lf, 2)  # >= CHUNK * MIN_LOG_F: exp(-a) stays finite
    local = torch.exp(a) * torch.cumsum(torch.exp(-a) * uu, 2)  # each chunk from state 0
    s = torch.cumsum(a[:, :, -1], 1)  # [B, N, H]
    idx = torch.arange(s.shape[1], device=s.device)
    lower = (idx[:, None] >= idx[None, :])[None, :, :, None]
    decay = (s[:, :, None] - s[:, None, :]).masked_fill(~lower, float("-inf"))
    end = (torch.exp(decay) * local[:, None, :, -1]).sum(2)  # state at the end of chunk k
    carry = torch.cat([torch.zeros_like(end[:, :1]), end[:, :-1]], 1)  # state entering chunk k
    c = local + torch.exp(a) * carry[:, :, None]
    return c.reshape(b, padded, h)[:, :length]


@contextlib.contextmanager
def traceable_ops() -> Iterator[None]:
    """Swap in the traceable ops for the duration of an export (the QRNN layers look
    `fo_pool` up in their module at call time)."""
    original = qrnn.fo_pool
    qrnn.fo_pool = fo_pool_traceable
    try:
        yield
    finally:
        qrnn.fo_pool = original
