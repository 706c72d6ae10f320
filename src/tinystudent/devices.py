"""Where torch work runs: `cpu` (the default), `cuda`, `cuda:N` or `auto`.

One spelling for every recipe, CLI flag and API call, resolved in one place, so a Ray worker
or a DDP rank with a GPU uses it and a machine without one says so in one line instead of a
CUDA traceback. `auto` is resolved on the machine doing the work (a Ray worker resolves it on
its own node), which is why recipes keep the unresolved string and never hash it: where a run
happens is not what it computes (CUDA's float sums differ from the CPU's in the last bits,
as a different thread count does on the CPU).
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from typing import Annotated, Any

import torch
from pydantic import AfterValidator, Field

from tinystudent.errors import TinyStudentError

#: What a recipe's `device` and `--device` accept.
DEVICE_PATTERN = r"^(auto|cpu|cuda(:\d+)?)$"
DEVICE_HELP = "where torch work runs: cpu (default), cuda, cuda:N or auto (cuda when present)"
DEVICE_CHOICES = "choose cpu, cuda, cuda:N or auto"


class DeviceError(TinyStudentError):
    """A device that this machine does not have; the message says what to use instead."""


def check_device_name(device: str) -> str:
    """`device` if it is a spelling we accept; a one-line error otherwise."""
    if not re.match(DEVICE_PATTERN, str(device)):
        raise DeviceError(f"device {device!r}: {DEVICE_CHOICES}")
    return str(device)


def _spelling(value: str) -> str:
    if not re.match(DEVICE_PATTERN, value):
        raise ValueError(DEVICE_CHOICES)
    return value


#: A recipe field holding a device's spelling (checked, not resolved: a recipe may be checked
#: on a laptop for a GPU machine; the run resolves it where it runs).
DeviceName = Annotated[str, AfterValidator(_spelling), Field(description=DEVICE_HELP)]


def resolve_device(device: str | torch.device = "cpu") -> torch.device:
    """The torch device for `device`: `auto` is CUDA when this machine has it, else CPU;
    `cuda` / `cuda:N` without a GPU (or past the last one) is a one-line `DeviceError`."""
    if isinstance(device, torch.device):
        return device
    name = check_device_name(device)
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cpu":
        return torch.device("cpu")
    if not torch.cuda.is_available():
        raise DeviceError(
            f"device {name!r}: this machine has no CUDA GPU (torch {torch.__version__}); "
            "use --device cpu or device: auto"
        )
    target = torch.device(name)
    count = torch.cuda.device_count()
    if target.index is not None and target.index >= count:
        raise DeviceError(f"device {name!r}: this machine has {count} CUDA GPU(s); use cuda:0")
    return target


def to_device(obj: Any, device: torch.device) -> Any:
    """`obj` with every tensor inside it (dicts, lists, tuples, dataclasses) on `device`;
    anything else unchanged. On the tensor's own device this returns the same tensor."""
    if isinstance(obj, torch.Tensor):
        return obj.to(device)
    if isinstance(obj, Mapping):
        return {k: to_device(v, device) for k, v in obj.items()}
    if isinstance(obj, tuple):
        return tuple(to_device(v, device) for v in obj)
    if isinstance(obj, list):
        return [to_device(v, device) for v in obj]
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        moved = {
            f.name: to_device(getattr(obj, f.name), device)
            for f in dataclasses.fields(obj)
            if f.init
        }
        return dataclasses.replace(obj, **moved)
    return obj


def module_device(module: torch.nn.Module) -> torch.device:
    """Where `module`'s weights are (CPU for a module without any)."""
    for p in module.parameters():
        return p.device
    return torch.device("cpu")
