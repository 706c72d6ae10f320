"""Bidirectional QRNN layer (Bradbury et al. 2016) with fo-pooling and zoneout.

Gates come from one matrix product over all time steps; the recurrence
c_t = f_t * c_{t-1} + (1 - f_t) * z_t is then solved in closed form within chunks of time,
c_t = exp(A_t) * (c_start + cumsum_s exp(-A_s) u_s) with A = cumsum(log f) from the chunk's
start: two cumulative sums instead of a Python loop over every step. Bounding log f below by
-5 (a forget gate under 0.7% is a full reset either way) keeps exp(-A) within float32 range
for chunks of 16 steps. Padding gets f = 1 and no input, so it passes state through.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from tinystudent.students import qrnn_fused

MIN_LOG_F = -5.0
CHUNK = 16  # CHUNK * -MIN_LOG_F = 80 < log(float32 max) = 88.7


def fo_pool(log_f: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
    """Solve c_t = f_t c_{t-1} + u_t (c_0 = 0). log_f, u: [B, L, H] -> c: [B, L, H]."""
    log_f = log_f.clamp(min=MIN_LOG_F)
    carry = torch.zeros_like(u[:, 0])
    out = []
    for start in range(0, u.shape[1], CHUNK):
        a = torch.cumsum(log_f[:, start : start + CHUNK], dim=1)
        c = torch.exp(a) * (
            torch.cumsum(torch.exp(-a) * u[:, start : start + CHUNK], dim=1) + carry.unsqueeze(1)
        )
        out.append(c)
        carry = c[:, -1]
    return torch.cat(out, dim=1)


class QRNNDirection(nn.Module):
    """One direction: gates from a window of `window` consecutive inputs. With `reverse` the
    window looks ahead and the state runs from the last step to the first."""

    def __init__(self, d_in: int, hidden: int, window: int, zoneout: float) -> None:
        super().__init__()
        self.window = window
        self.zoneout = zoneout
        self.gates = nn.Linear(d_in * window, 3 * hidden)

    def forward(self, x: torch.Tensor, mask: torch.Tensor, reverse: bool = False) -> torch.Tensor:
        if reverse:
            return self(x.flip(1), mask.flip(1)).flip(1)
        shifted = [x]
        for k in range(1, self.window):  # x_{t-k}, zero before the start
            shifted.append(F.pad(x, (0, 0, k, 0))[:, : x.shape[1]])
        z, f, o = self.gates(torch.cat(shifted, dim=-1)).chunk(3, dim=-1)
        log_f = F.logsigmoid(f)
        keep = torch.sigmoid(-f)  # 1 - f, computed stably
        m = mask.unsqueeze(-1)
        if self.training and self.zoneout > 0:
            # Zoneout: a unit keeps its previous state (f = 1) with probability `zoneout`.
            m = m * torch.bernoulli(torch.full_like(keep, 1 - self.zoneout))
        c = fo_pool(log_f * m, keep * torch.tanh(z) * m)
        return torch.sigmoid(o) * c


class BiQRNN(nn.Module):
    """Forward and backward QRNN directions, concatenated: [B, L, D] -> [B, L, 2H]. `fused`
    runs the layer through the numba kernel (`qrnn_fused`) where it can run: the same
    recurrence and parameters, one product and one autograd node."""

    def __init__(
        self, d_in: int, hidden: int, window: int = 2, zoneout: float = 0.0, fused: bool = False
    ) -> None:
        super().__init__()
        self.fused = fused
        self.fwd = QRNNDirection(d_in, hidden, window, zoneout)
        self.bwd = QRNNDirection(d_in, hidden, window, zoneout)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        if self.fused and qrnn_fused.can_fuse(x):
            out = qrnn_fused.fused_biqrnn(self, x, mask)
            if out is not None:  # None: a mask with holes, which only the reference runs
                return out
        h_f = self.fwd(x, mask)
        # Right padding becomes left padding when reversed; padded steps carry no input, so
        # the backward state starts at zero on the last real token.
        h_b = self.bwd(x, mask, reverse=True)
        return torch.cat([h_f, h_b], dim=-1) * mask.unsqueeze(-1)
