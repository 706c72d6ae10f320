"""Student training on several processes with DistributedDataParallel, same result as one.

It is the one training loop (`tinystudent.train.train_student`) with a `DDPStrategy`. Every
rank builds the same batch order (`bucketed_batches`, same generator seed) and trains
on its slice of every *global* batch of `cfg.batch_size` rows. For the sum of the ranks'
gradients to equal the single-process gradient, each rank weighs its loss parts by its share
of the global batch (an objective averaged over rows, such as `kd`: local rows / global
rows; one averaged over gold-labelled rows, `ce`: local labelled / global labelled) and DDP
*sums* gradients (a comm hook) instead of averaging
them. Initial weights are rank 0's (DDP broadcasts them); clipping, the optimizer and the LR
schedule then see identical gradients on every rank, so the weights stay identical.

Dropout and zoneout are random: rank 0 keeps the single-process random stream, other ranks
draw from their own seeds, so with dropout > 0 a DDP run is a statistically equivalent run,
not the same numbers (the masks for a row depend on which rank drew them). With dropout and
zoneout at 0 it matches the single-process run up to float summation order.

Inputs travel as a job directory (`write_job`), so the same worker runs under
`torch.multiprocessing` (`train_student_ddp`) and under torchrun across machines
(`python -m tinystudent.scale.ddp_worker JOB_DIR OUT_DIR`).
"""

# No `from __future__ import annotations` here: DDP checks the comm hook's annotations at
# runtime and rejects them as strings.
import os
import shutil
import socket
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from tinystudent.io import read_json, save_safetensors, write_json
from tinystudent.losses import NO_LABEL
from tinystudent.seed import seed_everything
from tinystudent.students import Student, build_student, load_student
from tinystudent.train import Strategy, TeacherSignals, TrainConfig, TrainResult, train_student

JOB_FORMAT = 2


def write_job(
    job_dir: str | Path,
    student_kind: str,
    options: dict[str, Any],
    label_names: list[str],
    texts: list[str],
    teacher: np.ndarray | TeacherSignals,
    labels: list[int] | None,
    cfg: TrainConfig,
    checkpoint_dir: str | Path | None = None,
) -> Path:
    """Everything a rank needs, on disk: every rank (on any node) reads the same inputs.

    Teacher layer outputs cannot travel (they are computed by the teacher per batch), so
    layer-matching objectives train on one process."""
    signals = teacher if isinstance(teacher, TeacherSignals) else TeacherSignals(probs=teacher)
    if signals.layers is not None or "layers" in cfg.needs():
        raise ValueError("hidden/attention objectives run on one process (scale.nproc: 1)")
    labels = labels if labels is not None else [NO_LABEL] * len(texts)
    if not (len(texts) == len(signals.probs) == len(labels)):
        raise ValueError("texts, teacher_probs and labels must have the same length")
    out = Path(job_dir)
    arrays = {"probs": torch.from_numpy(np.ascontiguousarray(signals.probs))}
    if signals.embeddings is not None:
        arrays["embeddings"] = torch.from_numpy(np.ascontiguousarray(signals.embeddings))
    save_safetensors(out / "teacher_probs.safetensors", arrays, {"format": "pt"})
    write_json(
        out / "job.json",
        {
            "format": JOB_FORMAT,
            "student_kind": student_kind,
            "options": options,
            "label_names": list(label_names),
            "train": cfg.model_dump(mode="json", exclude_unset=True),
            "texts": list(texts),
            "labels": [int(y) for y in labels],
            "checkpoint_dir": None if checkpoint_dir is None else str(checkpoint_dir),
        },
    )
    return out


def _world() -> tuple[int, int]:
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def _sum_hook(_: Any, bucket: dist.GradBucket) -> torch.futures.Future[torch.Tensor]:
    """Sum gradients across ranks: each rank's loss is already weighted by its share."""
    fut = dist.all_reduce(bucket.buffer(), async_op=True).get_future()
    return fut.then(lambda f: f.value()[0])


def _shard(batch: list[int], rank: int, world: int) -> list[int]:
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
        mine = _shard(batch, self.rank, self.world)
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
        for p in params:  # objective weights sit outside DDP's module: sum them here
            if id(p) not in self._inside and p.grad is not None:
                dist.all_reduce(p.grad)

    def all_sum(self, values: list[float]) -> list[float]:
        """Sum floats over ranks (float64, so logged numbers do not depend on the rank count)."""
        if self.world == 1:
            return values
        t = torch.tensor(values, dtype=torch.float64, device=self.device)
        dist.all_reduce(t)
        return [float(x) for x in t.tolist()]

    def val_share(self, val_idx: list[int]) -> list[int]:
        return val_idx[self.rank :: self.world]


def run_worker(job_dir: str | Path, out_dir: str | Path) -> TrainResult:
    """One rank's training through the one training loop (`train_student`) with a DDP
    strategy; rank 0 saves the best weights (safetensors) and `train_log.json`."""
    job = read_json(Path(job_dir) / "job.json")
    if job.get("format") != JOB_FORMAT:
        raise ValueError(f"{job_dir}: job format {job.get('format')}, expected {JOB_FORMAT}")
    from safetensors.torch import load_file

    arrays = load_file(str(Path(job_dir) / "teacher_probs.safetensors"))
    emb = arrays.get("embeddings")
    signals = TeacherSignals(
        probs=arrays["probs"].numpy(), embeddings=None if emb is None else emb.numpy()
    )
    cfg = TrainConfig(**job["train"])
    rank, world = _world()
    device = torch.device("cpu")
    if dist.is_initialized() and dist.get_backend() == "nccl":
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", rank)))
        torch.cuda.set_device(device)
    seed_everything(cfg.seed)  # identical initial weights on every rank (DDP re-broadcasts)
    student = build_student(job["student_kind"], job["options"], job["label_names"])
    result = train_student(
        student,
        job["texts"],
        signals,
        job["labels"],
        cfg,
        checkpoint_dir=job.get("checkpoint_dir"),
        strategy=DDPStrategy(rank, world, device, cfg.seed),
    )
    if rank == 0:
        student.to("cpu").save(out_dir, {"ddp_world_size": world})
        write_json(Path(out_dir) / "train_log.json", {**result.log(), "world_size": world})
    return result


def init_from_env(backend: str | None = None) -> None:
    """Join the process group torchrun (or `train_student_ddp`) described in the environment.

    Reads RANK, WORLD_SIZE, MASTER_ADDR and MASTER_PORT; nccl where CUDA is available (one
    GPU per local rank), gloo on CPU.
    """
    if backend is None:
        backend = "nccl" if torch.cuda.is_available() else "gloo"
    dist.init_process_group(backend=backend, init_method="env://")


def _spawned(rank: int, world: int, port: int, job_dir: str, out_dir: str, backend: str) -> None:
    os.environ.update(
        RANK=str(rank),
        LOCAL_RANK=str(rank),
        WORLD_SIZE=str(world),
        MASTER_ADDR="127.0.0.1",
        MASTER_PORT=str(port),
    )
    if "OMP_NUM_THREADS" not in os.environ:  # share the cores instead of oversubscribing
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // world))
    init_from_env(backend)
    try:
        run_worker(job_dir, out_dir)
        dist.barrier()  # no rank leaves before rank 0 has saved
    finally:
        dist.destroy_process_group()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def train_student_ddp(
    nproc: int,
    student_kind: str,
    options: dict[str, Any],
    label_names: list[str],
    texts: list[str],
    teacher: np.ndarray | TeacherSignals,
    labels: list[int] | None,
    cfg: TrainConfig,
    out_dir: str | Path,
    backend: str | None = None,
    checkpoint_dir: str | Path | None = None,
) -> tuple[Student, TrainResult]:
    """Train on `nproc` local processes and return the saved student (loaded back) and its log.

    `nproc=1` runs in this process with no process group: the same code, which reproduces
    `train_student` exactly. The job inputs go to `out_dir/.ddp-job` and are removed after
    success; the student and `train_log.json` land in `out_dir`. With `checkpoint_dir`, rank
    0 saves every epoch there and a rerun resumes from the last one.
    """
    if nproc < 1:
        raise ValueError(f"nproc must be >= 1, got {nproc}")
    out = Path(out_dir)
    job = write_job(
        out / ".ddp-job",
        student_kind,
        options,
        label_names,
        texts,
        teacher,
        labels,
        cfg,
        checkpoint_dir,
    )
    if nproc == 1:
        run_worker(job, out)
    else:
        import torch.multiprocessing as mp

        if backend is None:
            backend = "nccl" if torch.cuda.device_count() >= nproc else "gloo"
        args = (nproc, _free_port(), str(job), str(out), backend)
        mp.spawn(_spawned, args=args, nprocs=nproc, join=True)
    shutil.rmtree(job, ignore_errors=True)
    log = read_json(out / "train_log.json")
    result = TrainResult(
        history=log["history"],
        best_epoch=log["best_epoch"],
        best_val_agreement=log["best_val_agreement"],
        seconds=log["seconds"],
        resumed_from_epoch=log["resumed_from_epoch"],
    )
    return load_student(out), result
