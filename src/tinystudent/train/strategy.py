"""Where a training step runs: one process, or one rank of several (torch DDP).

The loop asks its strategy which rows of a global batch this process trains on, how to weigh
each objective's parts for that share, how to sum numbers over processes, and what to do
after `backward()`. One process answers "all rows, weight 1, nothing to sum"; the DDP
strategy (`tinystudent.scale.ddp`) answers with a shard and its share.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn


class Strategy:
    """Single-process training on `device` (CPU by default)."""

    rank: int = 0
    world: int = 1

    def __init__(self, device: str | torch.device = "cpu") -> None:
        self.device = torch.device(device)

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
        """Reduce gradients the wrapped module does not reduce itself (objective weights)."""

    def all_sum(self, values: list[float]) -> list[float]:
        return values

    def val_share(self, val_idx: list[int]) -> list[int]:
        """The hold-out rows this process scores (their counts are summed over processes)."""
        return val_idx


def resolve_device(device: str) -> torch.device:
    """`auto` is CUDA when there is one, else CPU; anything else is passed to torch."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)
