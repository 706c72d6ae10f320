"""The DDP strategy: one rank of a DistributedDataParallel run inside the one engine.

Every rank builds the same batch order (same generator seed) and trains on its slice of
every *global* batch. For the sum of the ranks' gradients to equal the single-process
gradient, each rank weighs its loss parts by its share of the global batch (an objective
averaged over rows, such as `kd`: local rows / global rows; one averaged over gold-labelled
rows, `ce`: local labelled / global labelled) and DDP *sums* gradients (a comm hook) instead
of averaging them; parameters outside the DDP module (an objective's projection) are summed
after `backward()`. Initial weights are rank 0's (DDP broadcasts them); clipping, the
optimizer and the LR schedule then see identical gradients on every rank, so the weights
stay identical.

Dropout and zoneout are random: rank 0 keeps the single-process random stream, other ranks
draw from their own seeds, so with dropout > 0 a DDP run is a statistically equivalent run,
not the same numbers. With dropout and zoneout at 0 it matches one process up to float
summation order. Launching ranks (job files, spawn, torchrun) is `tinystudent.scale.ddp`.
"""

# No `from __future__ import annotations` here: DDP checks the comm hook's annotations at
# runtime and rejects them as strings.
import os
from collections.abc import Sequence
from typing import Any

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from tinystudent.devices import resolve_device
from tinystudent.losses import NO_LABEL
from tinystudent.train.strategy import Strategy


def _sum_hook(_: Any, bucket: dist.GradBucket) -> torch.futures.Future[torch.Tensor]:
    """Sum gradients across ranks: each rank's loss is already weighted by its share."""
    fut = dist.all_reduce(bucket.buffer(), async_op=True).get_future()
    return fut.then(lambda f: f.value()[0])


def shard_rows(batch: list[int], rank: int, world: int) -> list[int]:
    """Rank `rank`'s contiguous slice of a global batch; sizes differ by at most one."""
    q, r = divmod(len(batch), world)
    lo = rank * q + min(rank, r)
    return batch[lo : lo + q + (rank < r)]


class DDPStrategy(Strategy):
    """One rank of a DDP run: a shard of every global batch, weighted by its share."""

    def __init__(self, rank: int, world: int, device: torch.device, seed: int) -> None:
        super().__init__(device)
        self.rank, self.world, self.seed = rank, world, seed
        self._inside: set[int] = set()

    @classmethod
    def from_env(cls, seed: int, device: str = "cpu") -> "DDPStrategy":
        """This process's rank in the joined process group (rank 0 of 1 when there is none)
        and its device: `device` resolved on this machine; in a group, a CUDA device (or the
        nccl backend) means the GPU of this process's local rank."""
        rank, world, where = 0, 1, resolve_device(device)
        if dist.is_available() and dist.is_initialized():
            rank, world = dist.get_rank(), dist.get_world_size()
            if dist.get_backend() == "nccl" or where.type == "cuda":
                where = torch.device("cuda", int(os.environ.get("LOCAL_RANK", rank)))
                torch.cuda.set_device(where)
        return cls(rank, world, where, seed)

    def wrap(self, student: nn.Module) -> nn.Module:
        if self.world == 1:
            return student
        self._inside = {id(p) for p in student.parameters()}
        cuda = self.device.type == "cuda"
        model = DistributedDataParallel(student, device_ids=[self.device.index] if cuda else None)
        model.register_comm_hook(None, _sum_hook)
        if self.rank > 0:  # own dropout masks per rank; rank 0 keeps one process's stream
            torch.manual_seed(self.seed + self.rank)
        return model

    def shard(
        self, batch: list[int], labels: Sequence[int]
    ) -> tuple[list[int], dict[str, float] | None]:
        mine = shard_rows(batch, self.rank, self.world)
        n_gold = sum(labels[i] != NO_LABEL for i in batch)
        shares = {
            "row": len(mine) / len(batch),
            "gold": sum(labels[i] != NO_LABEL for i in mine) / max(1, n_gold),
        }
        if not mine:  # a global batch smaller than the world: take part with weight 0
            return batch[:1], {"row": 0.0, "gold": 0.0}
        return mine, shares

    def after_backward(self, params: Sequence[nn.Parameter]) -> None:
        if self.world == 1:
            return
        for p in params:  # weights outside DDP's module (objectives'): sum them here
            if id(p) not in self._inside and p.grad is not None:
                dist.all_reduce(p.grad)

    def gather(self, value: Any) -> list[Any]:
        if self.world == 1:
            return [value]
        out: list[Any] = [None] * self.world
        dist.all_gather_object(out, value)
        return out

    def all_sum(self, values: list[float]) -> list[float]:
        """Sum floats over ranks (float64, so logged numbers do not depend on the rank count)."""
        if self.world == 1:
            return values
        t = torch.tensor(values, dtype=torch.float64, device=self.device)
        dist.all_reduce(t)
        return [float(x) for x in t.tolist()]

    def val_share(self, val_idx: list[int]) -> list[int]:
        return val_idx[self.rank :: self.world]
