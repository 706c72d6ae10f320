"""Int8 weights: per-row symmetric quantisation of every matrix, saved as safetensors.

This gives the honest "int8 size on disk" of a student (int8 matrices + float32 scales +
float32 biases), and a dequantised copy to measure what the rounding costs in accuracy.
"""

from __future__ import annotations

from pathlib import Path

import torch

from tinystudent.io import save_safetensors
from tinystudent.students.base import Student


def quantize_state(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Matrices (2-D+ float tensors) to int8 + per-row scale; everything else unchanged."""
    out: dict[str, torch.Tensor] = {}
    for name, t in state.items():
        if t.is_floating_point() and t.dim() >= 2:
            rows = t.reshape(t.shape[0], -1).float()
            scale = rows.abs().amax(dim=1).clamp(min=1e-12) / 127.0
            out[name + ".int8"] = torch.round(rows / scale[:, None]).to(torch.int8).reshape(t.shape)
            out[name + ".scale"] = scale
        else:
            out[name] = t
    return out


def dequantize_state(q: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    out: dict[str, torch.Tensor] = {}
    for name, t in q.items():
        if name.endswith(".int8"):
            base = name[: -len(".int8")]
            scale = q[base + ".scale"]
            flat = t.reshape(t.shape[0], -1).float() * scale[:, None]
            out[base] = flat.reshape(t.shape)
        elif not name.endswith(".scale"):
            out[name] = t
    return out


def save_int8(student: Student, path: str | Path) -> int:
    """Write the int8 weights of `student` to `path`; returns the file size in bytes."""
    save_safetensors(
        path,
        quantize_state(student.state_dict()),
        {"kind": student.kind, "quantization": "int8-per-row"},
    )
    return Path(path).stat().st_size


def int8_copy(student: Student) -> Student:
    """A copy of `student` whose weights went through int8 and back (to score the rounding)."""
    import copy

    clone = copy.deepcopy(student)
    clone.load_state_dict(dequantize_state(quantize_state(student.state_dict())))
    clone.eval()
    return clone


def dynamic_int8(student: Student) -> Student:
    """A copy whose Linear/LSTM layers run int8 matrix products (activations quantised on the
    fly): the fast CPU inference path in PyTorch."""
    import copy
    import warnings

    from torch import nn

    with warnings.catch_warnings():  # torch.ao.quantization announces its successor (torchao)
        warnings.simplefilter("ignore")
        from torch.ao.quantization import quantize_dynamic

        clone = quantize_dynamic(copy.deepcopy(student), {nn.Linear, nn.LSTM}, dtype=torch.qint8)
    clone.eval()
    return clone
