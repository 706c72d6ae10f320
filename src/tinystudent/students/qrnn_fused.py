"""A fused BiQRNN layer for training: one matrix product, one numba loop forward, one back.

The reference (`qrnn.QRNNDirection`) builds each direction's window by shifting and
concatenating the input, runs two gate products, then evaluates the gates and the chunked
closed-form scan as a dozen small tensor ops, each with its own autograd node; on CPU those,
not the matrix products, take most of a pQRNN training step. Here a layer is:

- a packed batch: the real tokens only, concatenated (`pack`), so neither the products nor
  the kernels spend work on padding (a quarter of a length-bucketed batch of Rotten
  Tomatoes texts);
- one product x [N, D] -> blocks [N, G], the light runtime's layout (G = 2 directions x
  window x 3H; block (d, k) is what the input at offset k gives direction d, see
  `tinystudent.export.fused_graph`), so no shifted copies of x are made;
- `FusedBiQRNN`: per text and direction, the window sum of blocks, the gates and the
  recurrence c_t = F_t c_{t-1} + m_t sigmoid(-f_t) tanh(z_t), F_t = max(sigmoid(f_t), e^-5)
  where zoneout's m_t = 1 and F_t = 1 where m_t = 0, h_t = sigmoid(o_t) c_t: the
  reference's recurrence, step by step. The backward pass walks time the other way from
  the saved states and gate exponentials;
- `PackedPool`: the student's mean + max pooling on the packed rows of the last layer, so
  the padded [B, L, 2H] array is made only for `hidden_states`, never differentiated
  through in a kd / ce step.

The kernels run on as many numba threads as torch has, so `torch.set_num_threads` governs
both (one thread is the training default).

numba is optional (`pip install 'tinystudent[fast]'`); `available()` says whether it is here.
"""

from __future__ import annotations

import importlib
import os
from typing import Any

import torch
from torch.nn import functional as F

from tinystudent.errors import TinyStudentError

_kernels: Any = None


def available() -> bool:
    """True when numba (and so the kernels) can be imported."""
    global _kernels
    if _kernels is None:
        try:
            _kernels = importlib.import_module("tinystudent.students.qrnn_fused_kernels")
        except ImportError:
            _kernels = False
        else:
            _prefer_workqueue(_kernels.numba)
    return bool(_kernels)


def _prefer_workqueue(numba: Any) -> None:
    """numba's own thread pool, not OpenMP, unless the user chose (NUMBA_THREADING_LAYER) or
    a pool already runs. With the OpenMP layer (the one torch's libgomp provides) one
    parallel kernel call left the whole training process several times slower on a busy
    2-core machine, reference ops included (bench notes in docs/serve.md). The workqueue
    layer is not safe for parallel calls from several Python threads at once, which a
    training step never makes; the light runtime leaves numba's default alone."""
    if os.environ.get("NUMBA_THREADING_LAYER"):
        return
    try:
        numba.threading_layer()  # raises while no pool has been started
    except ValueError:
        numba.config.THREADING_LAYER = "workqueue"


def _pick(name: str) -> Any:
    """The kernel, on as many numba threads as torch has (a per-calling-thread setting, so
    set on every call): numba's default, every core, stalls a one-thread step on a busy
    machine whenever one of its workers is descheduled. One thread runs the serial form in
    the calling thread: a parallel region, even of one thread, waits on a worker."""
    numba = _kernels.numba
    threads = max(1, min(torch.get_num_threads(), numba.config.NUMBA_NUM_THREADS))
    if threads == 1:
        return getattr(_kernels, f"{name}_serial")
    numba.set_num_threads(threads)
    return getattr(_kernels, name)


def _loaded() -> Any:
    """The kernels module, imported on first use; a clear error without numba."""
    if not available():
        raise TinyStudentError("fused pQRNN kernels need numba: pip install 'tinystudent[fast]'")
    return _kernels


def _seed() -> int:
    """A stream for the kernels' generator, drawn from torch's: `torch.manual_seed` (and a
    checkpoint's saved RNG state) fixes every draw."""
    return int(torch.randint(0, 2**62, (1,)))


def uniform(*shape: int) -> torch.Tensor:
    """Uniform [0, 1) float32 draws (numba's counter-based generator, ~15x `torch.rand`)."""
    out = torch.empty(shape)
    _loaded().uniform(_seed(), out.numpy())
    return out


def dropout(x: torch.Tensor, rate: float) -> torch.Tensor:
    """Inverted dropout of x at `rate` with a mask from `uniform`'s generator: the same
    distribution as `nn.Dropout`, other draws."""
    mask = torch.empty(x.shape)
    _loaded().keep_mask(_seed(), float(rate), mask.numpy())
    return x * mask


class FusedBiQRNN(torch.autograd.Function):
    """blocks [N, G] of a packed batch (text b in rows starts[b]:starts[b + 1]) -> h [N, 2H]."""

    @staticmethod
    def forward(
        ctx: Any,
        blocks: torch.Tensor,
        starts: torch.Tensor,
        zone: torch.Tensor | None,
        rate: float,
        window: int,
    ) -> torch.Tensor:
        g = blocks.detach().contiguous()
        n = g.shape[0]
        hidden = g.shape[1] // (6 * window)
        st = starts.detach().to(torch.int64).contiguous()
        zn = zone if zone is not None else torch.zeros(1, 1)
        h = torch.empty(n, 2 * hidden)
        c = torch.empty(n, 2 * hidden)
        act = torch.empty(n, 6 * hidden)
        args = (g.numpy(), st.numpy(), zn.numpy(), zone is not None, float(rate), window, hidden)
        _pick("forward")(*args, h.numpy(), c.numpy(), act.numpy())
        ctx.save_for_backward(act, st, zn, c)
        ctx.shape = g.shape
        ctx.args = (zone is not None, float(rate), window, hidden)
        return h

    @staticmethod
    def backward(ctx: Any, grad_h: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        act, st, zn, c = ctx.saved_tensors
        dblocks = torch.empty(ctx.shape)
        dh = grad_h.detach().to(torch.float32)  # strided views are fine: no copy
        args = (act.numpy(), st.numpy(), zn.numpy(), *ctx.args, c.numpy(), dh.numpy())
        _pick("backward")(*args, dblocks.numpy())
        return dblocks, None, None, None, None


class PackedPool(torch.autograd.Function):
    """h [N, W] of a packed batch -> [B, 2W]: each text's mean and max over its rows, what
    the student's masked mean + max over the padded [B, L, W] gives, without the padding
    (the max's gradient goes to the first of tied rows, where torch's amax splits it)."""

    @staticmethod
    def forward(ctx: Any, h: torch.Tensor, starts: torch.Tensor) -> torch.Tensor:
        hc = h.detach().contiguous()
        st = starts.detach().to(torch.int64).contiguous()
        out = torch.empty(st.shape[0] - 1, 2 * hc.shape[1])
        arg = torch.empty(st.shape[0] - 1, hc.shape[1], dtype=torch.int64)
        _loaded().pool_forward(hc.numpy(), st.numpy(), out.numpy(), arg.numpy())
        ctx.save_for_backward(st, arg)
        ctx.rows = hc.shape[0]
        return out

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        st, arg = ctx.saved_tensors
        dh = torch.empty(ctx.rows, arg.shape[1])
        g = grad.detach().to(torch.float32).contiguous()
        _loaded().pool_backward(g.numpy(), st.numpy(), arg.numpy(), dh.numpy())
        return dh, None


def packed_pool(h: torch.Tensor, starts: torch.Tensor) -> torch.Tensor:
    """Mean + max pooling [B, 2W] of a packed batch's h [N, W] (see `PackedPool`)."""
    out: torch.Tensor = PackedPool.apply(h, starts)
    return out


def pack(mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor] | None:
    """(rows, starts) of a right-padded mask [B, L]: the flat indices of the real positions
    and each text's first packed row (B + 1 entries); None when the mask has holes (the
    packed kernel knows only whole texts)."""
    lengths = (mask != 0).sum(1)
    if not bool((mask != 0).eq(torch.arange(mask.shape[1]) < lengths[:, None]).all()):
        return None
    starts = torch.zeros(mask.shape[0] + 1, dtype=torch.int64)
    torch.cumsum(lengths, 0, out=starts[1:])
    return (mask.reshape(-1) != 0).nonzero().squeeze(1), starts


def window_weights(fwd: Any, bwd: Any) -> tuple[torch.Tensor, torch.Tensor]:
    """The two directions' gate weights [3H, window*D] rearranged into one [G, D] product and
    its bias (in the k = 0 blocks), differentiably: the parameters stay the reference's."""
    weights, biases = [], []
    for direction in (fwd, bwd):
        w, b = direction.gates.weight, direction.gates.bias
        d_in = w.shape[1] // direction.window
        for k in range(direction.window):
            weights.append(w[:, k * d_in : (k + 1) * d_in])
            biases.append(b if k == 0 else torch.zeros_like(b))
    return torch.cat(weights), torch.cat(biases)


def packed_biqrnn(layer: Any, x: torch.Tensor, starts: torch.Tensor) -> torch.Tensor:
    """A `qrnn.BiQRNN` layer's output [N, 2H] on a packed batch x [N, D] (see `pack`)."""
    weight, bias = window_weights(layer.fwd, layer.bwd)
    blocks = F.linear(x, weight, bias)
    rate = float(layer.fwd.zoneout)
    zone = None
    if layer.training and rate > 0:  # uniform draws; a unit updates where draw >= rate
        zone = uniform(x.shape[0], 2 * (weight.shape[0] // (6 * layer.fwd.window)))
    out: torch.Tensor = FusedBiQRNN.apply(blocks, starts, zone, rate, layer.fwd.window)
    return out


def fused_biqrnn(layer: Any, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor | None:
    """A `qrnn.BiQRNN` layer's output [B, L, 2H] (masked) through the packed kernel, or None
    when the mask has holes."""
    packed = pack(mask)
    if packed is None:
        return None
    rows, starts = packed
    h = packed_biqrnn(layer, x.reshape(-1, x.shape[-1]).index_select(0, rows), starts)
    return unpack(h, rows, mask.shape)


def unpack(h: torch.Tensor, rows: torch.Tensor, shape: torch.Size) -> torch.Tensor:
    """Packed rows [N, W] back to a zero-padded [B, L, W] (differentiably)."""
    out = h.new_zeros(shape[0] * shape[1], h.shape[1]).index_copy(0, rows, h)
    return out.view(shape[0], shape[1], h.shape[1])


def can_fuse(x: torch.Tensor) -> bool:
    """The kernel runs float32 CPU tensors outside tracing (export traces the reference)."""
    return (
        x.device.type == "cpu"
        and x.dtype == torch.float32
        and not torch.jit.is_tracing()
        and not torch.onnx.is_in_onnx_export()
        and available()
    )
