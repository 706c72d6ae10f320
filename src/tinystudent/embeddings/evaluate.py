"""Scoring an encoder without gold similarity labels: how much of the teacher's geometry it kept.

- `similarity_spearman`: rank correlation of student and teacher cosine similarities over every
  pair of held-out texts (the teacher plays the role of the STS annotator);
- `neighbour_recall`: the share of each held-out text's 10 nearest neighbours under the teacher
  that the student also ranks in its top 10 (what a retrieval user sees);
- `linear_probe_accuracy`: a logistic regression on frozen embeddings, trained on a dataset's
  fixed train split and scored on its test split (whether the geometry still separates labels).

Held-out texts are the test splits of the labelled datasets, which training never sees.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

Encode = Callable[[list[str]], np.ndarray]


class EvalConfig(BaseModel):
    """How much to evaluate; the caps keep a CPU run short (all are seeded, fixed subsets)."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool = True
    max_train: int | None = Field(5000, ge=2, description="cap on linear-probe training texts")
    geometry_texts: int = Field(1000, ge=12, description="held-out texts for Spearman/recall")
    k: int = Field(10, ge=1, description="neighbours for recall@k")
    c: float = Field(1.0, gt=0, description="inverse regularisation of the linear probe")
    seed: int = Field(0, ge=0)


@dataclass
class EvalTask:
    """One labelled dataset's fixed split; its test texts double as held-out geometry texts."""

    name: str
    train_texts: list[str]
    train_labels: list[int]
    test_texts: list[str]
    test_labels: list[int]


def unit_rows(x: np.ndarray) -> np.ndarray:
    """Rows scaled to length 1 (zero rows stay zero)."""
    x = np.asarray(x, dtype=np.float64)
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return np.asarray(x / np.maximum(norms, 1e-12))


def cosine_matrix(x: np.ndarray) -> np.ndarray:
    u = unit_rows(x)
    return np.asarray(u @ u.T)


def similarity_spearman(student: np.ndarray, teacher: np.ndarray) -> float:
    """Spearman correlation of the two models' cosine similarities over all distinct pairs."""
    from scipy.stats import spearmanr

    if len(student) != len(teacher) or len(student) < 3:
        raise ValueError(f"need the same >= 3 texts, got {len(student)} and {len(teacher)}")
    iu = np.triu_indices(len(student), k=1)
    s, t = cosine_matrix(student)[iu], cosine_matrix(teacher)[iu]
    if np.ptp(s) == 0 or np.ptp(t) == 0:  # a constant encoder ranks nothing
        return 0.0
    return float(spearmanr(s, t).statistic)


def top_k(x: np.ndarray, k: int) -> np.ndarray:
    """Indices [n, k] of each row's k most cosine-similar other rows (itself excluded)."""
    sims = cosine_matrix(x)
    np.fill_diagonal(sims, -np.inf)
    return np.argpartition(-sims, k - 1, axis=1)[:, :k]


def neighbour_recall(student: np.ndarray, teacher: np.ndarray, k: int = 10) -> float:
    """Mean over texts of |student top-k ∩ teacher top-k| / k (nearest neighbours by cosine)."""
    if len(student) != len(teacher) or len(student) <= k:
        raise ValueError(f"need the same > k={k} texts, got {len(student)} and {len(teacher)}")
    s, t = top_k(student, k), top_k(teacher, k)
    return float(np.mean([len(set(a) & set(b)) / k for a, b in zip(s, t)]))


def linear_probe_accuracy(
    train_x: np.ndarray,
    train_y: list[int],
    test_x: np.ndarray,
    test_y: list[int],
    c: float = 1.0,
    seed: int = 0,
) -> float:
    """Logistic regression on unit-length, standardised embeddings; test-split accuracy.

    Encoders differ in scale (a normalised teacher, a raw static model), so rows are put on the
    unit sphere and features standardised: one fixed `c` then suits every encoder.
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    clf = make_pipeline(StandardScaler(), LogisticRegression(C=c, max_iter=2000, random_state=seed))
    clf.fit(unit_rows(train_x), np.asarray(train_y))
    return float((clf.predict(unit_rows(test_x)) == np.asarray(test_y)).mean())


def _subset(n: int, cap: int | None, seed: int) -> list[int]:
    """A fixed, seeded subset of range(n) (all of it under the cap), in ascending order."""
    if cap is None or n <= cap:
        return list(range(n))
    return sorted(random.Random(seed).sample(range(n), cap))


def evaluate_encoder(
    encode: Encode, tasks: list[EvalTask], reference: Encode, cfg: EvalConfig | None = None
) -> dict[str, Any]:
    """Geometry against `reference` (the teacher) and linear-probe accuracy, per task and mean.

    `reference` is called on the same held-out texts; pass the teacher's cached encoder so it
    is computed once for every model scored.
    """
    cfg = cfg or EvalConfig()
    out: dict[str, Any] = {}
    for task in tasks:
        geo = [task.test_texts[i] for i in _subset(len(task.test_texts), cfg.geometry_texts, 1)]
        mine, ref = encode(geo), reference(geo)
        train_idx = _subset(len(task.train_texts), cfg.max_train, cfg.seed)
        train_x = encode([task.train_texts[i] for i in train_idx])
        acc = linear_probe_accuracy(
            train_x,
            [task.train_labels[i] for i in train_idx],
            encode(task.test_texts),
            task.test_labels,
            cfg.c,
            cfg.seed,
        )
        out[task.name] = {
            "spearman": similarity_spearman(mine, ref),
            f"recall_at_{cfg.k}": neighbour_recall(mine, ref, min(cfg.k, len(geo) - 1)),
            "lr_accuracy": acc,
            "geometry_texts": len(geo),
            "lr_train": len(train_idx),
            "lr_test": len(task.test_texts),
        }
    if tasks:
        keys = ["spearman", f"recall_at_{cfg.k}", "lr_accuracy"]
        out["mean"] = {k: float(np.mean([out[t.name][k] for t in tasks])) for k in keys}
    return out
