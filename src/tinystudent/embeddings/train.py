"""The training loop of an embedding student: regress the teacher's cached vectors.

A slice of the transfer set is held out and the epoch whose student agrees best with the
teacher there (mean cosine) is kept: students memorise a small transfer set (docs/architecture.md).
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict, Field
from torch import nn

from tinystudent.embeddings.objectives import ObjectiveConfig, distill_objective
from tinystudent.embeddings.student import EmbeddingStudent
from tinystudent.evaluate.speed import torch_threads
from tinystudent.seed import seed_everything
from tinystudent.train.engine import Fit, FitResult, Hooks
from tinystudent.train.rows import bucketed_batches, epoch_steps
from tinystudent.train.strategy import Strategy


class EmbedTrainConfig(BaseModel):
    """Optimisation of the embedding student (one-cycle AdamW, best validation epoch kept)."""

    model_config = ConfigDict(extra="forbid")

    epochs: int = Field(4, ge=1)
    batch_size: int = Field(128, ge=2, description="also InfoNCE's number of candidates")
    lr: float = Field(3e-3, gt=0)
    weight_decay: float = Field(0.0, ge=0)
    val_fraction: float = Field(0.05, ge=0, lt=0.5)
    patience: int = Field(2, ge=1)
    max_grad_norm: float = Field(1.0, gt=0)
    threads: int | None = Field(None, ge=1, description="torch threads while training")
    init_projection: bool = Field(
        True, description="start the projection at the least-squares fit to the teacher"
    )
    ridge: float = Field(1e-3, ge=0, description="relative ridge of that least-squares fit")
    seed: int = 0


@dataclass
class EmbedFitResult(FitResult):
    """The engine's result (`best_score` is the held-out mean cosine) and the text counts."""

    train_texts: int = 0
    val_texts: int = 0

    def log(self) -> dict[str, Any]:
        return {**super().log(), "train_texts": self.train_texts, "val_texts": self.val_texts}


def holdout(n: int, fraction: float, seed: int) -> tuple[list[int], list[int]]:
    """Seeded (train, validation) indices of n texts."""
    idx = list(range(n))
    random.Random(seed).shuffle(idx)
    n_val = int(n * fraction)
    return sorted(idx[n_val:]), sorted(idx[:n_val])


@torch.inference_mode()
def mean_cosine(model: EmbeddingStudent, texts: list[str], targets: np.ndarray) -> float:
    """Mean cosine between the student's and the teacher's vectors of `texts`."""
    if not texts:
        return float("nan")
    mine = torch.from_numpy(model.encode(texts, batch_size=64))  # on the CPU, as numpy
    ref = torch.from_numpy(np.asarray(targets, dtype=np.float32))
    return float(torch.nn.functional.cosine_similarity(mine, ref, dim=-1).mean())


@torch.inference_mode()
def fit_projection(
    model: EmbeddingStudent,
    texts: list[str],
    targets: np.ndarray,
    ridge: float = 1e-3,
    max_texts: int = 5000,
    seed: int = 0,
) -> bool:
    """Set a linear projection to the ridge least-squares map from pooled vectors to targets.

    A random projection scrambles whatever the pooled vectors already know (a bag's teacher
    word vectors start model2vec-like): starting at the best linear read-out means training
    begins from a sensible encoder instead of spending its first epoch finding one. The ridge
    is relative to the mean squared feature; the bias is not penalised. False when the widths
    already matched (no projection to fit).
    """
    if not isinstance(model.projection, nn.Linear) or not texts:
        return False
    idx = random.Random(seed).sample(range(len(texts)), min(len(texts), max_texts))
    sample = sorted(idx, key=lambda i: len(texts[i]))
    model.eval()
    pooled = [
        model.student(**model.featurize([texts[i] for i in sample[b : b + 256]])).logits
        for b in range(0, len(sample), 256)
    ]
    x = torch.cat(pooled).double()
    x = torch.cat([x, torch.ones(len(x), 1, dtype=x.dtype)], dim=1)
    t = torch.from_numpy(np.asarray(targets, dtype=np.float64)[sample])
    gram = x.T @ x
    penalty = ridge * gram.diagonal()[:-1].mean().clamp(min=1e-12)
    gram[:-1, :-1] += penalty * torch.eye(len(gram) - 1, dtype=x.dtype)
    w = torch.linalg.solve(gram, x.T @ t)
    model.projection.weight.copy_(w[:-1].T.float())
    model.projection.bias.copy_(w[-1].float())
    return True


def fit_embedding_student(
    model: EmbeddingStudent,
    texts: list[str],
    targets: np.ndarray,
    objective: ObjectiveConfig,
    cfg: EmbedTrainConfig,
    val_texts: list[str] | None = None,
    val_targets: np.ndarray | None = None,
    device: str | torch.device = "cpu",
) -> EmbedFitResult:
    """Train `model` in place on (text, teacher vector) pairs, on `device`; keeps the best
    validation epoch and leaves the model on the CPU (where it is saved and evaluated)."""
    if len(texts) != len(targets):
        raise ValueError(f"{len(texts)} texts but {len(targets)} teacher vectors")
    val_texts = val_texts or []
    seed_everything(cfg.seed)
    if cfg.init_projection:
        with torch_threads(cfg.threads):
            fit_projection(model, texts, targets, cfg.ridge, seed=cfg.seed)
    target_t = torch.from_numpy(np.asarray(targets, dtype=np.float32))
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    gen = torch.Generator().manual_seed(cfg.seed)
    fit = Fit(
        model,
        opt,
        list(model.parameters()),
        total_steps=cfg.epochs * epoch_steps(len(texts), cfg.batch_size),
        epochs=cfg.epochs,
        max_grad_norm=cfg.max_grad_norm,
        patience=cfg.patience,
        generator=gen,
        desc=f"embedding student {model.kind}",
        strategy=Strategy(device),
    )
    lengths = [len(t) for t in texts]
    history: list[dict[str, float]] = []

    def batches(epoch: int) -> list[list[int]]:
        return bucketed_batches(list(range(len(texts))), lengths, cfg.batch_size, gen)

    def prepare(batch: list[int]) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
        return model.featurize([texts[i] for i in batch]), target_t[batch]

    def step(batch: tuple[dict[str, torch.Tensor], torch.Tensor]) -> dict[str, torch.Tensor]:
        feats, target = batch
        return distill_objective(model(**feats), target, objective)

    def score(epoch: int, means: dict[str, float]) -> float:
        row = {"epoch": float(epoch), **means}
        row["val_cosine"] = mean_cosine(model, val_texts, val_targets)  # type: ignore[arg-type]
        history.append(row)
        return row["val_cosine"] if val_texts else float(epoch)

    with torch_threads(cfg.threads):
        done = fit.run(Hooks(batches, step, score, prepare=prepare))
    model.to("cpu")
    result = done.extend(EmbedFitResult, train_texts=len(texts), val_texts=len(val_texts))
    result.history, result.score_name = history, "val_cosine"
    if not val_texts:
        result.best_score = float("nan")
    return result


def distill_embedding_student(
    kind: str,
    options: dict[str, Any],
    texts: list[str],
    targets: np.ndarray,
    objective: ObjectiveConfig | None = None,
    cfg: EmbedTrainConfig | None = None,
    device: str | torch.device = "cpu",
) -> tuple[EmbeddingStudent, EmbedFitResult]:
    """Hold out a validation slice, build the student on the rest (vocabulary, word vectors,
    tokenizer see training texts only), and fit it to the teacher's vectors on `device`."""
    objective = objective or ObjectiveConfig()
    cfg = cfg or EmbedTrainConfig()
    targets = np.asarray(targets, dtype=np.float32)
    train_idx, val_idx = holdout(len(texts), cfg.val_fraction, cfg.seed)
    train_texts = [texts[i] for i in train_idx]
    seed_everything(cfg.seed)  # the student's random initial weights
    model = EmbeddingStudent.build(kind, options, int(targets.shape[1]), train_texts)
    result = fit_embedding_student(
        model,
        train_texts,
        targets[train_idx],
        objective,
        cfg,
        [texts[i] for i in val_idx],
        targets[val_idx],
        device,
    )
    return model, result
