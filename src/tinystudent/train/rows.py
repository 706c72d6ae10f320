"""Which rows train and in which batches: the hold-out split and length-bucketed batches.

Shared by the student loop and the embedding student, so both cut their epochs alike and
the number of optimizer steps is known before training starts (the LR schedule needs it).
"""

from __future__ import annotations

import math
import random

import torch

from tinystudent.train.config import TrainConfig

#: Batches per length-sorting pool: large enough to cut padding, small enough to stay random.
POOL_BATCHES = 50


def bucketed_batches(
    indices: list[int], lengths: list[int], batch_size: int, gen: torch.Generator
) -> list[list[int]]:
    """Shuffled batches of similar-length texts: padding is wasted compute in every student.

    Indices are shuffled, cut into pools of 50 batches, sorted by length within
    a pool, batched, and the batch order shuffled again, so batches stay random in content.
    """
    order = [indices[j] for j in torch.randperm(len(indices), generator=gen).tolist()]
    span = batch_size * POOL_BATCHES
    batches: list[list[int]] = []
    for p in range(0, len(order), span):
        pool = sorted(order[p : p + span], key=lambda i: lengths[i])
        batches.extend(pool[b : b + batch_size] for b in range(0, len(pool), batch_size))
    return [batches[j] for j in torch.randperm(len(batches), generator=gen).tolist()]


def epoch_steps(n_train: int, batch_size: int) -> int:
    """How many batches `bucketed_batches` makes of `n_train` rows (pools of 50 batches)."""
    span = batch_size * POOL_BATCHES
    return sum(math.ceil(min(span, n_train - p) / batch_size) for p in range(0, n_train, span))


def holdout_split(labels: list[int], cfg: TrainConfig) -> tuple[list[int], list[int]]:
    """(train, validation) indices: `val_fraction` of all rows, drawn by a seeded shuffle from
    the unlabelled ones only (gold rows always train)."""
    idx = list(range(len(labels)))
    random.Random(cfg.seed).shuffle(idx)
    n_val = int(len(labels) * cfg.val_fraction)
    val_set = set([i for i in idx if labels[i] < 0][:n_val])
    return [i for i in idx if i not in val_set], sorted(val_set)
