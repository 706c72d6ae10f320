"""Student training on several processes with DistributedDataParallel, same result as one.

Every rank builds the same batch order (`bucketed_batches`, same generator seed) and trains
on its slice of every *global* batch of `cfg.batch_size` rows. For the sum of the ranks'
gradients to equal the single-process gradient, each rank weighs its loss parts by its share
of the global batch (`kd`: local rows / global rows; `ce`, a mean over gold-labelled rows:
local labelled / global labelled) and DDP *sums* gradients (a comm hook) instead of averaging
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
import copy
import os
import shutil
import socket
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel

from tinystudent.io import read_json, save_safetensors, write_json
from tinystudent.losses import NO_LABEL, DistillationLoss
from tinystudent.seed import seed_everything
from tinystudent.students import Student, build_student, load_student
from tinystudent.train.loop import (
    TrainConfig,
    TrainResult,
    bucketed_batches,
    holdout_split,
    optimizer_and_schedule,
)

JOB_FORMAT = 1


def write_job(
    job_dir: str | Path,
    student_kind: str,
    options: dict[str, Any],
    label_names: list[str],
    texts: list[str],
    teacher_probs: np.ndarray,
    labels: list[int] | None,
    cfg: TrainConfig,
) -> Path:
    """Everything a rank needs, on disk: every rank (on any node) reads the same inputs."""
    labels = labels if labels is not None else [NO_LABEL] * len(texts)
    if not (len(texts) == len(teacher_probs) == len(labels)):
        raise ValueError("texts, teacher_probs and labels must have the same length")
    out = Path(job_dir)
    probs = torch.from_numpy(np.ascontiguousarray(teacher_probs, dtype=np.float32))
    save_safetensors(out / "teacher_probs.safetensors", {"probs": probs}, {"format": "pt"})
    write_json(
        out / "job.json",
        {
            "format": JOB_FORMAT,
            "student_kind": student_kind,
            "options": options,
            "label_names": list(label_names),
            "train": cfg.model_dump(),
            "texts": list(texts),
            "labels": [int(y) for y in labels],
        },
    )
    return out


def _world() -> tuple[int, int]:
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def _all_sum(values: list[float], device: torch.device) -> list[float]:
    """Sum floats over ranks (float64, so the logged numbers do not depend on the rank count)."""
    if _world()[1] == 1:
        return values
    t = torch.tensor(values, dtype=torch.float64, device=device)
    dist.all_reduce(t)
    return t.tolist()


def _sum_hook(_: Any, bucket: dist.GradBucket) -> torch.futures.Future[torch.Tensor]:
    """Sum gradients across ranks: each rank's loss is already weighted by its share."""
    fut = dist.all_reduce(bucket.buffer(), async_op=True).get_future()
    return fut.then(lambda f: f.value()[0])


def _shard(batch: list[int], rank: int, world: int) -> list[int]:
    """Rank `rank`'s contiguous slice of a global batch; sizes differ by at most one."""
    q, r = divmod(len(batch), world)
    lo = rank * q + min(rank, r)
    return batch[lo : lo + q + (rank < r)]


@torch.no_grad()
def _agree_count(
    student: Student, texts: list[str], teacher_probs: torch.Tensor, device: torch.device
) -> int:
    """How many of `texts` the student labels as the teacher does (length-sorted batches)."""
    student.eval()
    ref = teacher_probs.numpy()
    hits = 0
    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
    for i in range(0, len(order), 256):
        idx = order[i : i + 256]
        feats = student.featurize([texts[j] for j in idx])
        logits = student(**{k: v.to(device) for k, v in feats.items()}).logits
        hits += int((logits.argmax(1).cpu().numpy() == ref[idx].argmax(1)).sum())
    return hits


def run_worker(job_dir: str | Path, out_dir: str | Path) -> TrainResult:
    """One rank's training; with a process group initialised, it is one of many.

    Mirrors `train_student` (same hold-out, batches, optimizer, schedule, early stopping) so
    that one rank reproduces it exactly. Rank 0 saves the best weights (safetensors) and
    `train_log.json` into `out_dir`.
    """
    job = read_json(Path(job_dir) / "job.json")
    if job.get("format") != JOB_FORMAT:
        raise ValueError(f"{job_dir}: job format {job.get('format')}, expected {JOB_FORMAT}")
    from safetensors.torch import load_file

    probs_t = load_file(str(Path(job_dir) / "teacher_probs.safetensors"))["probs"]
    texts: list[str] = job["texts"]
    labels: list[int] = job["labels"]
    cfg = TrainConfig(**job["train"])
    rank, world = _world()
    device = torch.device("cpu")
    if dist.is_initialized() and dist.get_backend() == "nccl":
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", rank)))
        torch.cuda.set_device(device)

    seed_everything(cfg.seed)  # identical initial weights on every rank (DDP re-broadcasts)
    student = build_student(job["student_kind"], job["options"], job["label_names"])
    loss_fn = DistillationLoss(cfg.temperature, cfg.alpha, cfg.loss)
    seed_everything(cfg.seed)  # where train_student seeds: the rest follows its stream

    train_idx, val_idx = holdout_split(labels, cfg)  # the same hold-out as train_student
    my_val = val_idx[rank::world]  # agreement is counted on a slice per rank, then summed

    student.fit_preprocessing([texts[i] for i in train_idx])
    student.to(device)
    model: torch.nn.Module = student
    if world > 1:
        cuda = device.type == "cuda"
        model = DistributedDataParallel(student, device_ids=[device.index] if cuda else None)
        model.register_comm_hook(None, _sum_hook)
        if rank > 0:  # own dropout masks per rank; rank 0 keeps train_student's stream
            torch.manual_seed(cfg.seed + rank)
    labels_t = torch.tensor(labels, dtype=torch.long)
    opt, sched = optimizer_and_schedule(student.parameters(), cfg, len(train_idx))
    gen = torch.Generator().manual_seed(cfg.seed)
    lengths = [len(t) for t in texts]
    result = TrainResult()
    best_state = copy.deepcopy(student.state_dict())
    best_score, bad_epochs = -1.0, 0
    start = time.perf_counter()
    for epoch in range(1, cfg.epochs + 1):
        student.train()
        sums: dict[str, float] = {}
        for batch in bucketed_batches(train_idx, lengths, cfg.batch_size, gen):
            mine = _shard(batch, rank, world)
            n_gold = sum(labels[i] != NO_LABEL for i in batch)
            weights = {
                "kd": len(mine) / len(batch),
                "ce": sum(labels[i] != NO_LABEL for i in mine) / max(1, n_gold),
            }
            if not mine:  # a global batch smaller than the world: take part with weight 0
                mine, weights = batch[:1], {"kd": 0.0, "ce": 0.0}
            feats = student.featurize([texts[i] for i in mine])
            out = model(**{k: v.to(device) for k, v in feats.items()})
            parts = loss_fn(out.logits, probs_t[mine].to(device), labels_t[mine].to(device))
            parts = {k: v * weights[k] for k, v in parts.items()}
            loss = sum(parts.values())
            opt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(student.parameters(), cfg.max_grad_norm)
            opt.step()
            sched.step()
            for k, v in parts.items():
                sums[k] = sums.get(k, 0.0) + float(v.detach()) * len(batch)
        keys = sorted(sums)
        totals = _all_sum([sums[k] for k in keys], device)
        mine_hits = _agree_count(student, [texts[i] for i in my_val], probs_t[my_val], device)
        hits = _all_sum([float(mine_hits)], device)[0]
        row = {"epoch": float(epoch), **{k: v / len(train_idx) for k, v in zip(keys, totals)}}
        row["val_agreement"] = hits / len(val_idx) if val_idx else float("nan")
        result.history.append(row)
        score = row["val_agreement"] if val_idx else float(epoch)
        if score > best_score:  # identical on every rank: same weights, summed counts
            best_score, result.best_epoch, bad_epochs = score, epoch, 0
            best_state = copy.deepcopy(student.state_dict())
        else:
            bad_epochs += 1
            if bad_epochs >= cfg.patience:
                break
    student.load_state_dict(best_state)
    student.eval()
    result.best_val_agreement = best_score if val_idx else float("nan")
    result.seconds = time.perf_counter() - start
    if rank == 0:
        student.to("cpu").save(out_dir, {"ddp_world_size": world})
        write_json(
            Path(out_dir) / "train_log.json",
            {
                "history": result.history,
                "best_epoch": result.best_epoch,
                "best_val_agreement": result.best_val_agreement,
                "seconds": result.seconds,
                "resumed_from_epoch": 0,
                "world_size": world,
            },
        )
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
    teacher_probs: np.ndarray,
    labels: list[int] | None,
    cfg: TrainConfig,
    out_dir: str | Path,
    backend: str | None = None,
) -> tuple[Student, TrainResult]:
    """Train on `nproc` local processes and return the saved student (loaded back) and its log.

    `nproc=1` runs in this process with no process group: the same code, which reproduces
    `train_student` exactly. The job inputs go to `out_dir/.ddp-job` and are removed after
    success; the student and `train_log.json` land in `out_dir`.
    """
    if nproc < 1:
        raise ValueError(f"nproc must be >= 1, got {nproc}")
    out = Path(out_dir)
    job = write_job(
        out / ".ddp-job", student_kind, options, label_names, texts, teacher_probs, labels, cfg
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
    )
    return load_student(out), result
