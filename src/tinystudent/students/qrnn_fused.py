"""A fused QRNN gate + fo-pool for training: one numba loop forward, one backward.

The reference (`qrnn.QRNNDirection`) evaluates the gates and the chunked closed-form scan as a
dozen small tensor ops, each with its own autograd node; on CPU those, not the matrix products,
take most of a pQRNN training step. Here `FusedFoPool` takes the gate pre-activations
[B, L, 3H] (z, f, o), the 0/1 mask and zoneout's draws and returns h = sigmoid(o) c
with c_t = F_t c_{t-1} + m_t sigmoid(-f_t) tanh(z_t), F_t = max(sigmoid(f_t), e^-5) where
m_t = 1 and F_t = 1 where m_t = 0: the reference's recurrence, step by step. The backward pass
walks time the other way and recomputes the gates (only c is saved). `reverse` runs the
recurrence from the last step to the first, so the backward direction needs no flips.

numba is optional (`pip install 'tinystudent[fast]'`); `available()` says whether it is here.
"""

from __future__ import annotations

import importlib
from typing import Any

import torch

_kernels: Any = None


def available() -> bool:
    """True when numba (and so the kernels) can be imported."""
    global _kernels
    if _kernels is None:
        try:
            _kernels = importlib.import_module("tinystudent.students.qrnn_fused_kernels")
        except ImportError:
            _kernels = False
    return bool(_kernels)


class FusedFoPool(torch.autograd.Function):
    @staticmethod
    def forward(
        ctx: Any, gates: torch.Tensor, mask: torch.Tensor, zone: torch.Tensor | None, reverse: bool
    ) -> torch.Tensor:
        g = gates.detach().contiguous()
        n, length, hidden = g.shape[0], g.shape[1], g.shape[2] // 3
        mk = mask.detach().to(torch.float32).contiguous()
        zn = zone if zone is not None else torch.ones(1, 1, 1, dtype=torch.bool)
        h = torch.empty(n, length, hidden)
        c = torch.empty(n, length, hidden)
        args = (g.numpy(), mk.numpy(), zn.numpy(), zone is not None, bool(reverse))
        _kernels.forward(*args, h.numpy(), c.numpy())
        ctx.save_for_backward(g, mk, zn, c)
        ctx.has_zone, ctx.reverse = zone is not None, bool(reverse)
        return h

    @staticmethod
    def backward(ctx: Any, grad_h: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        g, mk, zn, c = ctx.saved_tensors
        dg = torch.empty_like(g)
        dh = grad_h.detach().to(torch.float32)  # strided views are fine: no copy
        args = (g.numpy(), mk.numpy(), zn.numpy(), ctx.has_zone, c.numpy(), dh.numpy())
        _kernels.backward(*args, ctx.reverse, dg.numpy())
        return dg, None, None, None


def fused_fo_pool(
    gates: torch.Tensor, mask: torch.Tensor, zone: torch.Tensor | None = None, reverse: bool = False
) -> torch.Tensor:
    """h [B, L, H] from gate pre-activations [B, L, 3H], the 0/1 mask [B, L] and optionally
    zoneout draws [B, L, H] (bool, True where the unit updates)."""
    out: torch.Tensor = FusedFoPool.apply(gates, mask, zone, reverse)
    return out


def can_fuse(x: torch.Tensor) -> bool:
    """The kernel runs float32 CPU tensors outside tracing (export traces the reference)."""
    return (
        x.device.type == "cpu"
        and x.dtype == torch.float32
        and not torch.jit.is_tracing()
        and not torch.onnx.is_in_onnx_export()
        and available()
    )
