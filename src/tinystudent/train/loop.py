"""Train a student on teacher probabilities (and gold labels where known).

Students memorise a small transfer set within a few epochs (DESIGN.md §4), so a slice of the
transfer set is held out and the weights from the epoch with the best agreement with the
teacher there are kept. The test split is never touched here.
"""

from __future__ import annotations

import copy
import math
import random
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict, Field
from tqdm.auto import tqdm

from tinystudent.checkpoint import fingerprint, open_checkpoint, rng_state, set_rng_state, slow_step
from tinystudent.losses import DistillationLoss
from tinystudent.seed import seed_everything
from tinystudent.students.base import Student

#: Bump when training gives other weights for the same inputs: the student stage reruns.
CODE_VERSION = 1


class TrainConfig(BaseModel):
    """Student optimisation; `alpha` weighs the distillation term against gold cross-entropy."""

    model_config = ConfigDict(extra="forbid")

    epochs: int = Field(8, ge=1)
    batch_size: int = Field(64, ge=1)
    lr: float = Field(3e-3, gt=0)
    weight_decay: float = Field(1e-4, ge=0)
    temperature: float = Field(2.0, gt=0)
    alpha: float = Field(0.9, ge=0, le=1)
    loss: Literal["kl", "mse"] = "kl"
    val_fraction: float = Field(0.1, ge=0, lt=0.5)
    patience: int = Field(3, ge=1)
    max_grad_norm: float = Field(1.0, gt=0)
    seed: int = 0


@dataclass
class TrainResult:
    """Per-epoch log and the chosen epoch; kept in the report so runs can be compared."""

    history: list[dict[str, float]] = field(default_factory=list)
    best_epoch: int = 0
    best_val_agreement: float = float("nan")
    seconds: float = 0.0
    resumed_from_epoch: int = 0  # epochs restored from a checkpoint (0: a fresh start)


def bucketed_batches(
    indices: list[int], lengths: list[int], batch_size: int, gen: torch.Generator
) -> list[list[int]]:
    """Shuffled batches of similar-length texts: padding is wasted compute in every student.

    Indices are shuffled, cut into pools of 50 batches, sorted by length within
    a pool, batched, and the batch order shuffled again, so batches stay random in content.
    """
    order = [indices[j] for j in torch.randperm(len(indices), generator=gen).tolist()]
    span = batch_size * 50
    batches: list[list[int]] = []
    for p in range(0, len(order), span):
        pool = sorted(order[p : p + span], key=lambda i: lengths[i])
        batches.extend(pool[b : b + batch_size] for b in range(0, len(pool), batch_size))
    return [batches[j] for j in torch.randperm(len(batches), generator=gen).tolist()]


def warmup_fraction(total_steps: int) -> float:
    """OneCycleLR's warm-up share; torch divides by zero when it is exactly one step."""
    return 0.1 if 0.1 * total_steps != 1 else 0.2


def holdout_split(labels: list[int], cfg: TrainConfig) -> tuple[list[int], list[int]]:
    """(train, validation) indices: `val_fraction` of all rows, drawn by a seeded shuffle from
    the unlabelled ones only (gold rows always train). Single-process and DDP training share
    it, so both select epochs on the same texts."""
    idx = list(range(len(labels)))
    random.Random(cfg.seed).shuffle(idx)
    n_val = int(len(labels) * cfg.val_fraction)
    val_set = set([i for i in idx if labels[i] < 0][:n_val])
    return [i for i in idx if i not in val_set], sorted(val_set)


def epoch_steps(n_train: int, batch_size: int) -> int:
    """How many batches `bucketed_batches` makes of `n_train` rows (pools of 50 batches)."""
    span = batch_size * 50
    return sum(math.ceil(min(span, n_train - p) / batch_size) for p in range(0, n_train, span))


def optimizer_and_schedule(
    params: Any, cfg: TrainConfig, n_train: int
) -> tuple[torch.optim.Optimizer, torch.optim.lr_scheduler.LRScheduler]:
    """AdamW and a one-cycle schedule sized to the batches `bucketed_batches` will make."""
    opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    total = cfg.epochs * epoch_steps(n_train, cfg.batch_size)
    sched = torch.optim.lr_scheduler.OneCycleLR(
        opt, max_lr=cfg.lr, total_steps=total, pct_start=warmup_fraction(total)
    )
    return opt, sched


def _agreement(student: Student, texts: list[str], teacher_probs: np.ndarray) -> float:
    if not texts:
        return float("nan")
    pred = student.predict_proba(texts).argmax(1)
    return float((pred == teacher_probs.argmax(1)).mean())


def train_student(
    student: Student,
    texts: list[str],
    teacher_probs: np.ndarray,
    labels: list[int] | None = None,
    cfg: TrainConfig | None = None,
    loss_fn: DistillationLoss | None = None,
    checkpoint_dir: str | Path | None = None,
) -> TrainResult:
    """Fit `student` in place; `labels` holds gold ids or -1 where only the teacher speaks.

    With `checkpoint_dir`, everything the loop carries between epochs (weights, optimizer,
    scheduler, generators, best weights, early-stopping counters, history) is saved after
    each epoch, and a rerun with the same inputs continues from there to the same result.
    """
    cfg = cfg or TrainConfig()
    loss_fn = loss_fn or DistillationLoss(cfg.temperature, cfg.alpha, cfg.loss)
    seed_everything(cfg.seed)
    labels = labels if labels is not None else [-1] * len(texts)
    if not (len(texts) == len(teacher_probs) == len(labels)):
        raise ValueError("texts, teacher_probs and labels must have the same length")

    # Hold out unlabelled transfer texts for model selection (gold rows always train).
    train_idx, val_idx = holdout_split(labels, cfg)
    val_texts = [texts[i] for i in val_idx]
    val_probs = teacher_probs[val_idx]

    student.fit_preprocessing([texts[i] for i in train_idx])
    probs_t = torch.from_numpy(np.asarray(teacher_probs, dtype=np.float32))
    labels_t = torch.tensor(labels, dtype=torch.long)
    opt, sched = optimizer_and_schedule(student.parameters(), cfg, len(train_idx))
    steps_per_epoch = epoch_steps(len(train_idx), cfg.batch_size)
    total = cfg.epochs * steps_per_epoch
    gen = torch.Generator().manual_seed(cfg.seed)
    lengths = [len(t) for t in texts]
    result = TrainResult()
    best_state = copy.deepcopy(student.state_dict())
    best_score = -1.0
    bad_epochs = 0
    stopped = False
    start = time.perf_counter()
    key = fingerprint(
        "student",
        student.kind,
        student.cfg.model_dump(),
        student.preprocessing_state(),
        student.state_dict(),
        cfg.model_dump(),
        f"{type(loss_fn).__qualname__}({loss_fn!r})",
        texts,
        np.asarray(teacher_probs, dtype=np.float32),
        labels,
    )
    ckpt = open_checkpoint(checkpoint_dir, key)
    state: dict[str, Any] | None = ckpt.load() if ckpt else None
    if state is not None:
        student.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        sched.load_state_dict(state["scheduler"])
        set_rng_state(state["rng"], gen)
        best_state = state["best_model"]
        best_score, bad_epochs = float(state["best_score"]), int(state["bad_epochs"])
        stopped = bool(state["stopped"])
        result.history = state["history"]
        result.best_epoch = int(state["best_epoch"])
        result.resumed_from_epoch = len(result.history)
        start -= float(state["seconds"])
    done = len(result.history)
    last = done if stopped else cfg.epochs
    bar = tqdm(
        total=total, initial=done * steps_per_epoch, desc=f"student {student.kind}", unit="step"
    )
    for epoch in range(done + 1, last + 1):
        student.train()
        sums: dict[str, float] = {}
        for batch in bucketed_batches(train_idx, lengths, cfg.batch_size, gen):
            out = student(**student.featurize([texts[i] for i in batch]))
            parts = loss_fn(out.logits, probs_t[batch], labels_t[batch])
            loss = sum(parts.values())
            opt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(student.parameters(), cfg.max_grad_norm)
            opt.step()
            sched.step()
            for k, v in parts.items():
                sums[k] = sums.get(k, 0.0) + float(v.detach()) * len(batch)
            bar.update(1)
            slow_step()
        row = {"epoch": float(epoch), **{k: v / len(train_idx) for k, v in sums.items()}}
        row["val_agreement"] = _agreement(student, val_texts, val_probs)
        result.history.append(row)
        bar.set_postfix(val_agree=f"{row['val_agreement']:.3f}")
        score = row["val_agreement"] if val_texts else float(epoch)
        if score > best_score:
            best_score, result.best_epoch, bad_epochs = score, epoch, 0
            best_state = copy.deepcopy(student.state_dict())
        else:
            bad_epochs += 1
            stopped = bad_epochs >= cfg.patience
        if ckpt:
            ckpt.save(
                {
                    "model": student.state_dict(),
                    "optimizer": opt.state_dict(),
                    "scheduler": sched.state_dict(),
                    "rng": rng_state(gen),
                    "best_model": best_state,
                    "best_score": best_score,
                    "best_epoch": result.best_epoch,
                    "bad_epochs": bad_epochs,
                    "stopped": stopped,
                    "history": result.history,
                    "seconds": time.perf_counter() - start,
                }
            )
        if stopped:
            break
    bar.close()
    student.load_state_dict(best_state)
    student.eval()
    result.best_val_agreement = best_score if val_texts else float("nan")
    result.seconds = time.perf_counter() - start
    return result
