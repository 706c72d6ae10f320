"""The one student training loop: batches, objectives, a score per epoch, checkpoints.

Students memorise a small transfer set within a few epochs, so a slice of the transfer set
is held out and the weights from the epoch with the best agreement with the teacher there
are kept. The test split is never touched here. Everything that varies is a named piece:
the objectives (`train/objectives`), their schedule (`train/schedule.py`) and where the step
runs (`train/strategy.py`: one process or a DDP rank), so the loop itself stays one read.
"""

from __future__ import annotations

import copy
import math
import random
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor
from tqdm.auto import tqdm

from tinystudent.checkpoint import fingerprint, open_checkpoint, rng_state, set_rng_state, slow_step
from tinystudent.seed import seed_everything
from tinystudent.students.base import Student
from tinystudent.train.batch import TeacherSignals, TrainBatch
from tinystudent.train.build import build_objectives
from tinystudent.train.config import TrainConfig
from tinystudent.train.engine import warmup_fraction
from tinystudent.train.objectives import Objective
from tinystudent.train.schedule import apply_schedule
from tinystudent.train.strategy import Strategy

#: Bump when training gives other weights for the same inputs: the student stage reruns.
CODE_VERSION = 1


@dataclass
class TrainResult:
    """Per-epoch log and the chosen epoch; kept in the report so runs can be compared."""

    history: list[dict[str, float]] = field(default_factory=list)
    best_epoch: int = 0
    best_val_agreement: float = float("nan")
    seconds: float = 0.0
    resumed_from_epoch: int = 0  # epochs restored from a checkpoint (0: a fresh start)

    def log(self) -> dict[str, Any]:
        """What lands in `train_log.json` and the report."""
        return {
            "history": self.history,
            "best_epoch": self.best_epoch,
            "best_val_agreement": self.best_val_agreement,
            "seconds": self.seconds,
            "resumed_from_epoch": self.resumed_from_epoch,
        }


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


def holdout_split(labels: list[int], cfg: TrainConfig) -> tuple[list[int], list[int]]:
    """(train, validation) indices: `val_fraction` of all rows, drawn by a seeded shuffle from
    the unlabelled ones only (gold rows always train)."""
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


@torch.no_grad()
def agree_count(
    student: Student, texts: list[str], teacher_probs: np.ndarray, device: torch.device
) -> float:
    """How many of `texts` the student labels as the teacher does (as `predict_proba` would:
    length-sorted batches of 256, softmax, argmax). A multi-label student scores each text by
    the share of labels on which its sigmoid and the teacher's probability fall on the same
    side of 0.5 (its own thresholds are chosen only after training)."""
    student.eval()
    hits = 0.0
    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
    for i in range(0, len(order), 256):
        idx = order[i : i + 256]
        feats = student.featurize([texts[j] for j in idx])
        logits = student(**{k: v.to(device) for k, v in feats.items()}).logits
        probs = student.probabilities(logits).cpu().numpy()
        if student.multi_label:
            hits += float(((probs >= 0.5) == (teacher_probs[idx] >= 0.5)).mean(1).sum())
        else:
            hits += int((probs.argmax(1) == teacher_probs[idx].argmax(1)).sum())
    return hits


@dataclass
class _Progress:
    """Everything the loop carries between epochs, saved whole in a checkpoint."""

    best_state: dict[str, Tensor]
    best_score: float = -1.0
    bad_epochs: int = 0
    stopped: bool = False


def _weigh(parts: dict[str, Tensor], obj: Objective, shares: dict[str, float] | None) -> None:
    if shares is not None:
        for k in parts:
            parts[k] = parts[k] * shares[obj.per]


def _step_parts(
    objectives: list[Objective], out: Any, batch: TrainBatch, shares: dict[str, float] | None
) -> dict[str, Tensor]:
    """Every objective's named parts for one batch; two objectives may not share a name."""
    merged: dict[str, Tensor] = {}
    for obj in objectives:
        parts = obj(out, batch)
        _weigh(parts, obj, shares)
        clash = set(parts) & set(merged)
        if clash:
            raise ValueError(f"objective {obj.kind}: part names {sorted(clash)} already used")
        merged.update(parts)
    return merged


def train_student(
    student: Student,
    texts: list[str],
    teacher: np.ndarray | TeacherSignals,
    labels: list[int] | None = None,
    cfg: TrainConfig | None = None,
    checkpoint_dir: str | Path | None = None,
    strategy: Strategy | None = None,
) -> TrainResult:
    """Fit `student` in place; `labels` holds gold ids or -1 where only the teacher speaks.

    `teacher` is the teacher's probabilities, or every cached teacher signal
    (`TeacherSignals`) when an objective reads more than probabilities. With
    `checkpoint_dir`, everything the loop carries between epochs (weights, objectives,
    optimizer, scheduler, generators, best weights, early-stopping counters, history) is
    saved after each epoch, and a rerun with the same inputs continues to the same result.
    """
    cfg = cfg or TrainConfig()
    signals = teacher if isinstance(teacher, TeacherSignals) else TeacherSignals(probs=teacher)
    strategy = strategy or Strategy()
    seed_everything(cfg.seed)
    labels = labels if labels is not None else [-1] * len(texts)
    if not (len(texts) == len(signals.probs) == len(labels)):
        raise ValueError("texts, teacher probabilities and labels must have the same length")
    run = _Run.begin(student, texts, signals, labels, cfg, strategy, checkpoint_dir)
    for epoch in range(run.done + 1, (run.done if run.state.stopped else cfg.epochs) + 1):
        run.epoch(epoch)
        if run.state.stopped:
            break
    run.bar.close()
    student.load_state_dict(run.state.best_state)
    student.eval()
    result = run.result
    result.best_val_agreement = run.state.best_score if run.val_idx else float("nan")
    result.seconds = time.perf_counter() - run.started
    return result


@dataclass
class _Run:
    """One training run's fixed pieces and moving state; `epoch` is the hot loop."""

    student: Student
    texts: list[str]
    signals: TeacherSignals
    labels: list[int]
    cfg: TrainConfig
    strategy: Strategy
    objectives: list[Objective]
    model: torch.nn.Module
    params: list[torch.nn.Parameter]
    opt: torch.optim.Optimizer
    sched: torch.optim.lr_scheduler.LRScheduler
    train_idx: list[int]
    val_idx: list[int]
    gen: torch.Generator
    ckpt: Any
    state: _Progress
    result: TrainResult
    started: float
    bar: Any
    total: int
    step: int = 0

    @property
    def done(self) -> int:
        return len(self.result.history)

    @classmethod
    def begin(
        cls,
        student: Student,
        texts: list[str],
        signals: TeacherSignals,
        labels: list[int],
        cfg: TrainConfig,
        strategy: Strategy,
        checkpoint_dir: str | Path | None,
    ) -> _Run:
        """Hold-out split, preprocessing, objectives, optimizer; restore a checkpoint."""
        # Hold out unlabelled transfer texts for model selection (gold rows always train).
        train_idx, val_idx = holdout_split(labels, cfg)
        student.fit_preprocessing([texts[i] for i in train_idx])
        student.to(strategy.device)
        objectives = build_objectives(cfg, student, signals, texts[:2], strategy.device)
        key = fingerprint(
            "student",
            student.kind,
            student.cfg.model_dump(),
            student.preprocessing_state(),
            student.state_dict(),
            [o.state_dict() for o in objectives],
            cfg.model_dump(mode="json"),
            texts,
            signals.probs,
            signals.embeddings if signals.embeddings is not None else "no embeddings",
            labels,
        )
        model = strategy.wrap(student)
        params = list(student.parameters()) + [p for o in objectives for p in o.parameters()]
        opt, sched = optimizer_and_schedule(params, cfg, len(train_idx))
        steps_per_epoch = epoch_steps(len(train_idx), cfg.batch_size)
        run = cls(
            student,
            texts,
            signals,
            labels,
            cfg,
            strategy,
            objectives,
            model,
            params,
            opt,
            sched,
            train_idx,
            val_idx,
            torch.Generator().manual_seed(cfg.seed),
            open_checkpoint(checkpoint_dir, key),
            _Progress(best_state=copy.deepcopy(student.state_dict())),
            TrainResult(),
            time.perf_counter(),
            None,
            cfg.epochs * steps_per_epoch,
        )
        run.restore()
        run.step = run.done * steps_per_epoch
        run.bar = tqdm(
            total=run.total,
            initial=run.step,
            desc=f"student {student.kind}",
            unit="step",
            disable=not strategy.is_main,
        )
        return run

    def restore(self) -> None:
        saved: dict[str, Any] | None = self.ckpt.load() if self.ckpt else None
        if saved is None:
            return
        self.student.load_state_dict(saved["model"])
        for o, s in zip(self.objectives, saved["objectives"]):
            o.load_state_dict(s)
        self.opt.load_state_dict(saved["optimizer"])
        self.sched.load_state_dict(saved["scheduler"])
        set_rng_state(saved["rng"], self.gen)
        self.state = _Progress(
            saved["best_model"],
            float(saved["best_score"]),
            int(saved["bad_epochs"]),
            bool(saved["stopped"]),
        )
        self.result.history = saved["history"]
        self.result.best_epoch = int(saved["best_epoch"])
        self.result.resumed_from_epoch = len(self.result.history)
        self.started -= float(saved["seconds"])

    def epoch(self, epoch: int) -> None:
        """One pass over the training rows, then the hold-out score, selection, checkpoint."""
        cfg, dev, texts = self.cfg, self.strategy.device, self.texts
        probs_t = torch.from_numpy(self.signals.probs).to(dev)
        emb = self.signals.embeddings
        emb_t = None if emb is None else torch.from_numpy(emb).to(dev)
        labels_t = torch.tensor(self.labels, dtype=torch.long, device=dev)
        self.student.train()
        objectives_train(self.objectives, True)
        sums: dict[str, float] = {}
        scheduled: dict[str, float] = {}
        lengths = [len(t) for t in texts]
        for rows in bucketed_batches(self.train_idx, lengths, cfg.batch_size, self.gen):
            if cfg.schedule is not None:
                scheduled = apply_schedule(cfg.schedule, self.objectives, self.step / self.total)
            mine, shares = self.strategy.shard(rows, self.labels)
            feats = {
                k: v.to(dev) for k, v in self.student.featurize([texts[i] for i in mine]).items()
            }
            batch = TrainBatch(
                features=feats,
                labels=labels_t[mine],
                probs=probs_t[mine],
                embeddings=None if emb_t is None else emb_t[mine],
                forward=lambda f: self.model(**f),
                progress=self.step / self.total,
                layers=self.signals.layers,
            )
            parts = _step_parts(self.objectives, self.model(**feats), batch, shares)
            loss = sum(parts.values())
            self.opt.zero_grad()
            loss.backward()  # type: ignore[union-attr]
            self.strategy.after_backward([p for o in self.objectives for p in o.parameters()])
            torch.nn.utils.clip_grad_norm_(self.params, cfg.max_grad_norm)
            self.opt.step()
            self.sched.step()
            for k, v in parts.items():
                sums[k] = sums.get(k, 0.0) + float(v.detach()) * len(rows)
            self.step += 1
            self.bar.update(1)
            slow_step()
        self.finish_epoch(epoch, sums, scheduled)

    def finish_epoch(self, epoch: int, sums: dict[str, float], scheduled: dict[str, float]) -> None:
        """Log the epoch's mean parts and hold-out agreement; keep the best; checkpoint."""
        keys = list(sums)
        totals = self.strategy.all_sum([sums[k] for k in keys])
        n = len(self.train_idx)
        row = {"epoch": float(epoch), **{k: v / n for k, v in zip(keys, totals)}}
        row.update({f"schedule.{k}": v for k, v in scheduled.items()})
        mine = self.strategy.val_share(self.val_idx)
        hits = agree_count(
            self.student,
            [self.texts[i] for i in mine],
            self.signals.probs[mine],
            self.strategy.device,
        )
        total_hits = self.strategy.all_sum([float(hits)])[0]
        row["val_agreement"] = total_hits / len(self.val_idx) if self.val_idx else float("nan")
        self.result.history.append(row)
        self.bar.set_postfix(val_agree=f"{row['val_agreement']:.3f}")
        score = row["val_agreement"] if self.val_idx else float(epoch)
        _select(self.state, self.result, self.student, score, epoch, self.cfg.patience)
        if self.ckpt and self.strategy.is_main:
            self.ckpt.save(
                {
                    "model": self.student.state_dict(),
                    "objectives": [o.state_dict() for o in self.objectives],
                    "optimizer": self.opt.state_dict(),
                    "scheduler": self.sched.state_dict(),
                    "rng": rng_state(self.gen),
                    "best_model": self.state.best_state,
                    "best_score": self.state.best_score,
                    "best_epoch": self.result.best_epoch,
                    "bad_epochs": self.state.bad_epochs,
                    "stopped": self.state.stopped,
                    "history": self.result.history,
                    "seconds": time.perf_counter() - self.started,
                }
            )


def objectives_train(objectives: list[Objective], mode: bool) -> None:
    for o in objectives:
        o.train(mode)


def _select(
    state: _Progress,
    result: TrainResult,
    student: Student,
    score: float,
    epoch: int,
    patience: int,
) -> None:
    """Early stopping: keep the best epoch's weights; stop after `patience` worse epochs."""
    if score > state.best_score:
        state.best_score, result.best_epoch, state.bad_epochs = score, epoch, 0
        state.best_state = copy.deepcopy(student.state_dict())
    else:
        state.bad_epochs += 1
        state.stopped = state.bad_epochs >= patience
