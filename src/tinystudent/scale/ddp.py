"""Launching DDP student training: job files, local processes or torchrun, the result back.

There is no training code here: every rank runs the one student loop on the one engine
(`tinystudent.train.train_student`) with the DDP strategy (`tinystudent.train.ddp`), which
shards each global batch, weighs the parts by their share and sums the gradients, so the
result matches one process (exactly with dropout 0, up to float summation order).

Inputs travel as a job directory (`write_job`), so the same worker runs under
`torch.multiprocessing` (`train_student_ddp`) and under torchrun across machines
(`python -m tinystudent.scale.ddp_worker JOB_DIR OUT_DIR`).
"""

from __future__ import annotations

import os
import shutil
import socket
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist

from tinystudent.devices import DeviceError, check_device_name, resolve_device
from tinystudent.io import read_json, save_safetensors, write_json
from tinystudent.losses import NO_LABEL
from tinystudent.seed import seed_everything
from tinystudent.students import Student, build_student, load_student
from tinystudent.train import FitResult, TeacherSignals, TrainConfig, train_student
from tinystudent.train.ddp import DDPStrategy

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
    device: str = "cpu",
) -> Path:
    """Everything a rank needs, on disk: every rank (on any node) reads the same inputs;
    `device` travels unresolved (each rank resolves it on its own machine).

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
            "device": check_device_name(device),
        },
    )
    return out


def run_worker(job_dir: str | Path, out_dir: str | Path) -> FitResult:
    """One rank's training: `train_student` with this rank's DDP strategy; rank 0 saves the
    best weights (safetensors) and `train_log.json`."""
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
    strategy = DDPStrategy.from_env(cfg.seed, job.get("device", "cpu"))
    seed_everything(cfg.seed)  # identical initial weights on every rank (DDP re-broadcasts)
    student = build_student(job["student_kind"], job["options"], job["label_names"])
    result = train_student(
        student,
        job["texts"],
        signals,
        job["labels"],
        cfg,
        checkpoint_dir=job.get("checkpoint_dir"),
        strategy=strategy,
    )
    if strategy.is_main:
        student.to("cpu").save(out_dir, {"ddp_world_size": strategy.world})
        write_json(Path(out_dir) / "train_log.json", {**result.log(), "world_size": strategy.world})
    return result


def default_backend(device: str) -> str:
    """nccl when the ranks train on CUDA (one GPU per local rank), gloo on the CPU."""
    return "nccl" if resolve_device(device).type == "cuda" else "gloo"


def job_device(job_dir: str | Path) -> str:
    """The device a job's ranks train on (written by `write_job`)."""
    return str(read_json(Path(job_dir) / "job.json").get("device", "cpu"))


def init_from_env(backend: str | None = None, device: str = "cpu") -> None:
    """Join the process group torchrun (or `train_student_ddp`) described in the environment.

    Reads RANK, WORLD_SIZE, MASTER_ADDR and MASTER_PORT; without a `backend`, nccl when
    `device` resolves to CUDA here, gloo otherwise.
    """
    dist.init_process_group(backend=backend or default_backend(device), init_method="env://")


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
    device: str = "cpu",
) -> tuple[Student, FitResult]:
    """Train on `nproc` local processes and return the saved student (loaded back) and its log.

    `nproc=1` runs in this process with no process group: the same code, which reproduces
    `train_student` exactly. The job inputs go to `out_dir/.ddp-job` and are removed after
    success; the student and `train_log.json` land in `out_dir`. With `checkpoint_dir`, rank
    0 saves every epoch there and a rerun resumes from the last one. With a CUDA `device`,
    each rank trains on the GPU of its local rank (nccl), so `nproc` is at most the GPU count.
    """
    if nproc < 1:
        raise ValueError(f"nproc must be >= 1, got {nproc}")
    where = resolve_device(device)
    if nproc > 1 and where.type == "cuda" and torch.cuda.device_count() < nproc:
        raise DeviceError(
            f"scale.nproc {nproc} with device {device!r}: this machine has "
            f"{torch.cuda.device_count()} CUDA GPU(s), one per rank; lower nproc or use cpu"
        )
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
        device,
    )
    if nproc == 1:
        run_worker(job, out)
    else:
        import torch.multiprocessing as mp

        backend = backend or default_backend(device)
        args = (nproc, _free_port(), str(job), str(out), backend)
        mp.spawn(_spawned, args=args, nprocs=nproc, join=True)
    shutil.rmtree(job, ignore_errors=True)
    log = read_json(out / "train_log.json")
    result = FitResult.from_log(log, "val_agreement")
    return load_student(out), result
