"""Where a training step runs: one process, or one rank of several (torch DDP).

The engine (`train/engine.py`) asks its strategy for the module to call, what to do after
`backward()` and how to sum the epoch's numbers over processes; a run's hooks ask it which
rows of a global batch this process trains on and how to weigh each objective's parts for
that share. One process answers "the model itself, all rows, weight 1, nothing to sum"; the
DDP strategy (`train/ddp.py`) answers with a DDP module, a shard and its share.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from tinystudent.devices import resolve_device


class Strategy:
    """Single-process training on `device` (CPU by default)."""

    rank: int = 0
    world: int = 1

    def __init__(self, device: str | torch.device = "cpu") -> None:
        self.device = resolve_device(device)

    @property
    def is_main(self) -> bool:
        """The process that writes checkpoints and shows progress."""
        return self.rank == 0

    def wrap(self, student: nn.Module) -> nn.Module:
        """The module the loop calls for the forward pass."""
        return student

    def shard(
        self, batch: list[int], labels: Sequence[int]
    ) -> tuple[list[int], dict[str, float] | None]:
        """This process's rows of `batch`, and the weight of each objective's `per` (None:
        leave the parts as they are)."""
        return batch, None

    def after_backward(self, params: Sequence[nn.Parameter]) -> None:
        """Reduce the gradients of those `params` that the wrapped module does not reduce
        itself (an objective's own weights)."""

    def gather(self, value: Any) -> list[Any]:
        """`value` from every process, in rank order (all of them must call this)."""
        return [value]

    def all_sum(self, values: list[float]) -> list[float]:
        """`values` summed over processes."""
        return values

    def val_share(self, val_idx: list[int]) -> list[int]:
        """The hold-out rows this process scores (their counts are summed over processes)."""
        return val_idx
