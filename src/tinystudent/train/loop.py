"""Student training: the engine's hooks for fitting a student to its teacher.

Students memorise a small transfer set within a few epochs, so a slice of the transfer set
is held out and the weights from the epoch with the best agreement with the teacher there
are kept. The test split is never touched here. Everything that varies is a named piece:
the batches (`train/rows.py`), the objectives (`train/objectives`), their schedule
(`train/schedule.py`) and where the step runs (`train/strategy.py`: one process or a DDP
rank); the epochs, optimizer step, best-epoch keeping, patience and checkpoints are the
engine's (`train/engine.py`), shared with every other training run in the toolkit.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from tinystudent.checkpoint import fingerprint, open_checkpoint
from tinystudent.seed import seed_everything
from tinystudent.students.base import Student
from tinystudent.train.batch import TeacherSignals, TrainBatch
from tinystudent.train.build import build_objectives
from tinystudent.train.config import TrainConfig
from tinystudent.train.engine import Fit, FitResult, Hooks
from tinystudent.train.objectives import Objective
from tinystudent.train.rows import bucketed_batches, epoch_steps, holdout_split
from tinystudent.train.schedule import apply_schedule
from tinystudent.train.strategy import Strategy

__all__ = ["FitResult", "agree_count", "holdout_split", "train_student"]

#: Bump when training gives other weights for the same inputs: the student stage reruns.
CODE_VERSION = 1


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
) -> FitResult:
    """Fit `student` in place; `labels` holds gold ids or -1 where only the teacher speaks.

    `teacher` is the teacher's probabilities, or every cached teacher signal
    (`TeacherSignals`) when an objective reads more than probabilities. With
    `checkpoint_dir`, everything the run carries between epochs (weights, objectives,
    optimizer, scheduler, generators, best weights, early-stopping counters, history) is
    saved after each epoch, and a rerun with the same inputs continues to the same result.
    The student trains on `strategy.device` (the engine moves it and every batch there) and
    comes back on the CPU, where students are saved, evaluated and served.
    """
    cfg = cfg or TrainConfig()
    signals = teacher if isinstance(teacher, TeacherSignals) else TeacherSignals(probs=teacher)
    strategy = strategy or Strategy()
    seed_everything(cfg.seed)
    labels = labels if labels is not None else [-1] * len(texts)
    if not (len(texts) == len(signals.probs) == len(labels)):
        raise ValueError("texts, teacher probabilities and labels must have the same length")
    # Hold out unlabelled transfer texts for model selection (gold rows always train).
    train_idx, val_idx = holdout_split(labels, cfg)
    student.fit_preprocessing([texts[i] for i in train_idx])
    student.to(strategy.device)  # the objectives read its widths on the device
    objectives = build_objectives(cfg, student, signals, texts[:2], strategy.device)
    key = _run_key(student, objectives, cfg, texts, signals, labels)
    params = list(student.parameters()) + [p for o in objectives for p in o.parameters()]
    fit = Fit(
        student,
        torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay),
        params,
        total_steps=cfg.epochs * epoch_steps(len(train_idx), cfg.batch_size),
        epochs=cfg.epochs,
        schedule="one_cycle",
        max_grad_norm=cfg.max_grad_norm,
        patience=cfg.patience,
        checkpoint=open_checkpoint(checkpoint_dir, key),
        generator=torch.Generator().manual_seed(cfg.seed),
        desc=f"student {student.kind}",
        strategy=strategy,
    )
    run = _StudentRun(fit, student, texts, signals, labels, cfg, objectives, train_idx, val_idx)
    done = fit.run(run.hooks())
    student.to("cpu")
    done.history, done.score_name = run.history, "val_agreement"
    if not val_idx:
        done.best_score = float("nan")
    return done


def _run_key(
    student: Student,
    objectives: list[Objective],
    cfg: TrainConfig,
    texts: list[str],
    signals: TeacherSignals,
    labels: list[int],
) -> str:
    """Everything the weights depend on: a checkpoint from other inputs is never resumed."""
    return fingerprint(
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


@dataclass
class _StudentRun:
    """The student's hooks into the engine: its batches, its step, its score, its state."""

    fit: Fit
    student: Student
    texts: list[str]
    signals: TeacherSignals
    labels: list[int]
    cfg: TrainConfig
    objectives: list[Objective]
    train_idx: list[int]
    val_idx: list[int]
    history: list[dict[str, float]] = field(default_factory=list)
    scheduled: dict[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.lengths = [len(t) for t in self.texts]
        # On the CPU: the engine moves each batch's rows to the device.
        self.probs_t = torch.from_numpy(self.signals.probs)
        emb = self.signals.embeddings
        self.emb_t = None if emb is None else torch.from_numpy(emb)
        self.labels_t = torch.tensor(self.labels, dtype=torch.long)

    def hooks(self) -> Hooks:
        return Hooks(
            self.batches,
            self.step,
            self.score,
            save=self.save,
            load=self.load,
            prepare=self.prepare,
        )

    def batches(self, epoch: int) -> list[list[int]]:
        """The epoch's global batches of row indices (the same on every rank)."""
        for o in self.objectives:
            o.train(True)
        return bucketed_batches(self.train_idx, self.lengths, self.cfg.batch_size, self.gen)

    @property
    def gen(self) -> torch.Generator:
        assert self.fit.generator is not None
        return self.fit.generator

    def prepare(self, rows: list[int]) -> tuple[TrainBatch, dict[str, float] | None]:
        """This process's share of one global batch as CPU tensors, and its weights."""
        fit = self.fit
        mine, shares = fit.strategy.shard(rows, self.labels)
        batch = TrainBatch(
            features=self.student.featurize([self.texts[i] for i in mine]),
            labels=self.labels_t[mine],
            probs=self.probs_t[mine],
            embeddings=None if self.emb_t is None else self.emb_t[mine],
            forward=lambda f: fit.module(**f),
            progress=fit.step / fit.total_steps,
            layers=self.signals.layers,
        )
        return batch, shares

    def step(self, prepared: tuple[TrainBatch, dict[str, float] | None]) -> dict[str, Tensor]:
        """One batch (on the device) through the student and every objective."""
        batch, shares = prepared
        if self.cfg.schedule is not None:
            self.scheduled = apply_schedule(self.cfg.schedule, self.objectives, batch.progress)
        return _step_parts(self.objectives, self.fit.module(**batch.features), batch, shares)

    def score(self, epoch: int, means: dict[str, float]) -> float:
        """Log the epoch (mean parts, schedule, hold-out agreement); the agreement scores it
        (the epoch number when nothing is held out: the last epoch is kept)."""
        strategy = self.fit.strategy
        row = {"epoch": float(epoch), **means}
        row.update({f"schedule.{k}": v for k, v in self.scheduled.items()})
        mine = strategy.val_share(self.val_idx)
        hits = agree_count(
            self.student, [self.texts[i] for i in mine], self.signals.probs[mine], self.fit.device
        )
        total_hits = strategy.all_sum([float(hits)])[0]
        row["val_agreement"] = total_hits / len(self.val_idx) if self.val_idx else math.nan
        self.history.append(row)
        return row["val_agreement"] if self.val_idx else float(epoch)

    def save(self) -> dict[str, Any]:
        return {"objectives": [o.state_dict() for o in self.objectives], "history": self.history}

    def load(self, state: dict[str, Any]) -> None:
        for o, s in zip(self.objectives, state["objectives"], strict=True):
            o.load_state_dict(s)
        self.history = list(state["history"])
