"""The pQRNN's matrix products as one small ONNX graph, for the light runtime's fused kernel.

`tinystudent.inference.fused` runs a pQRNN without the full graph: the elementwise QRNN gates
and the fo-pool recurrence are one compiled loop over the real tokens of each text (no padding,
no chunked scan), and only the matrix products stay in onnxruntime, which does them well
(int8 ones included). This module writes those products, `fused.onnx` (and `fused.int8.onnx`):

- `projection [N, F]` -> `table [N, G]`: bottleneck and the first layer's gate products for N
  distinct tokens. A token's first-layer gates depend only on the token, so the runtime caches
  this table per token and most batches never run it.
- `states{l} [T, 2H]` -> `gates{l+1} [T, G]` for each later layer.
- `pooled [B, 4H]` -> `probs [B, C]`: the classifier head and softmax.

G = 2 directions x window x 3H: for direction d and window offset k, the block of 3H gate
pre-activations (z, f, o) that the input at offset k contributes; the bias sits in the k = 0
block. The kernel sums the blocks of the neighbouring tokens, which is the reference's
product with the concatenated window.
"""

from __future__ import annotations

import copy
import warnings
from pathlib import Path
from typing import Any

import torch
from torch import nn

from tinystudent.io import atomic_write

FUSED_FP32 = "fused.onnx"
FUSED_INT8 = "fused.int8.onnx"
OPSET = 17


def _window_linear(layer: Any) -> nn.Linear:
    """A BiQRNN layer's two gate products, rearranged into one [D -> G] product (see above)."""
    weights, biases = [], []
    for direction in (layer.fwd, layer.bwd):
        w, b = direction.gates.weight.detach(), direction.gates.bias.detach()
        d_in = w.shape[1] // direction.window
        for k in range(direction.window):
            weights.append(w[:, k * d_in : (k + 1) * d_in])
            biases.append(b if k == 0 else torch.zeros_like(b))
    weight, bias = torch.cat(weights), torch.cat(biases)
    linear = nn.Linear(weight.shape[1], weight.shape[0])
    with torch.no_grad():
        linear.weight.copy_(weight)
        linear.bias.copy_(bias)
    return linear


class _FusedGraph(nn.Module):
    def __init__(self, student: Any) -> None:
        super().__init__()
        self.bottleneck = copy.deepcopy(student.bottleneck)
        self.gates = nn.ModuleList(_window_linear(layer) for layer in student.qrnn)
        self.head = copy.deepcopy(student.head)

    def forward(
        self, projection: torch.Tensor, pooled: torch.Tensor, *states: torch.Tensor
    ) -> tuple[torch.Tensor, ...]:
        table = self.gates[0](self.bottleneck(projection))
        later = [g(h) for g, h in zip(self.gates[1:], states)]
        logits = self.head(pooled)
        return (table, *later, logits, torch.softmax(logits, dim=-1))


def fused_spec(student: Any) -> dict[str, Any]:
    """What the kernel needs to know besides the graph (preprocess.json's "fused" entry)."""
    cfg = student.cfg
    return {
        "layers": cfg.layers,
        "hidden": cfg.hidden,
        "window": cfg.window,
        "inputs": ["projection", "pooled"] + [f"states{i}" for i in range(1, cfg.layers)],
        "outputs": ["table"] + [f"gates{i}" for i in range(2, cfg.layers + 1)] + ["probs"],
    }


def export_fused(student: Any, out_dir: Path, int8: bool) -> dict[str, Any]:
    """Write fused.onnx (and fused.int8.onnx) beside the full graph; returns the "fused"
    entry of preprocess.json (spec plus the graph files by variant)."""
    spec = fused_spec(student)
    cfg = student.cfg
    graph = _FusedGraph(student).eval()
    h2 = 2 * cfg.hidden
    example = [torch.randn(3, cfg.features), torch.randn(2, 2 * h2)]
    example += [torch.randn(5, h2) for _ in range(1, cfg.layers)]
    rows = ["tokens", "batch"] + ["steps"] * (cfg.layers - 1)
    dynamic = {n: {0: r} for n, r in zip(spec["inputs"], rows)}
    dynamic.update({n: {0: r} for n, r in zip(spec["outputs"][:-1], ["tokens"] + rows[2:])})
    dynamic.update({"logits": {0: "batch"}, "probs": {0: "batch"}})
    with torch.inference_mode(False), torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")

        def write(tmp: Path) -> None:
            torch.onnx.export(
                graph,
                tuple(example),
                str(tmp),
                dynamo=False,
                input_names=spec["inputs"],
                output_names=spec["outputs"][:-1] + ["logits", "probs"],
                dynamic_axes=dynamic,
                opset_version=OPSET,
                do_constant_folding=True,
            )

        atomic_write(out_dir / FUSED_FP32, write)
    models = {"fp32": FUSED_FP32}
    if int8:
        _quantize_keep_table(out_dir / FUSED_FP32, out_dir / FUSED_INT8)
        models["int8"] = FUSED_INT8
    return {**spec, "models": models}


def _quantize_keep_table(src: Path, dst: Path) -> None:
    """Dynamic int8 for the later layers and the head; the token table stays fp32, because the
    runtime caches its rows across calls and dynamic quantisation would make a cached row
    depend on which other tokens were new in the same call."""
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    from tinystudent.export.onnx_export import _quiet_root_logger

    # The quantizer first splits each Gemm into "<name>_MatMul" + "<name>_Add": exclude both.
    table_nodes = [
        name
        for n in onnx.load(str(src)).graph.node
        if n.name.startswith(("/bottleneck/", "/gates.0/"))
        for name in (n.name, n.name + "_MatMul")
    ]
    with _quiet_root_logger():
        atomic_write(
            dst,
            lambda tmp: quantize_dynamic(
                src, tmp, weight_type=QuantType.QInt8, nodes_to_exclude=table_nodes
            ),
        )


def is_fused_kind(student: Any) -> bool:
    """The fused kernel implements the pQRNN exactly; other kinds keep the full graph only."""
    from tinystudent.students.pqrnn import PQRNN

    return isinstance(student, PQRNN)


def check_fused(
    student: Any,
    out: Path,
    meta: dict[str, Any],
    batches: list[list[str]],
    texts: list[str],
    fp32: Any,
    pre: Any,
    tolerance: float,
) -> dict[str, Any]:
    """The fused kernel must give the student's probabilities (fp32, to `tolerance`) on every
    check batch, like the full graph; int8 is scored by agreement with the fp32 graph. Skipped
    (and said so) when numba is not installed here: the runtime then keeps the full graph."""
    import numpy as np

    from tinystudent.export.onnx_export import ExportError, _probs
    from tinystudent.inference.fused import FusedPQRNN, load_kernels

    if load_kernels() is None:
        return {"fused_check": "skipped: numba is not installed"}
    fused = FusedPQRNN(out, meta, "fp32", threads=1)
    max_diff = 0.0
    with torch.inference_mode():
        for batch in batches:
            ref = torch.softmax(student(**student.featurize(batch)).logits.float(), -1).numpy()
            max_diff = max(max_diff, float(np.abs(ref - fused(batch)).max()))
    if not max_diff <= tolerance:
        raise ExportError(f"fused pQRNN probabilities differ from PyTorch by {max_diff:.2e}")
    facts: dict[str, Any] = {"fused_fp32_max_abs_diff": max_diff}
    if "int8" in meta["fused"]["models"]:
        fused8 = FusedPQRNN(out, meta, "int8", threads=1)
        p8 = np.concatenate([fused8(texts[i : i + 256]) for i in range(0, len(texts), 256)])
        p32 = _probs(fp32, pre, texts)
        facts["fused_int8_agreement_with_fp32"] = float((p32.argmax(1) == p8.argmax(1)).mean())
    return facts
