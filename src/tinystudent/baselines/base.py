"""The one small contract every plain baseline meets, so the benchmark can run them side by side.

A baseline is what a user would pick *instead of* distillation: it sees only the k gold labels.
`fit` takes label ids and the class count (a class may be absent from a tiny training set, and
the probability matrix must still have one column per class).
"""

from __future__ import annotations

import pickle
from abc import ABC, abstractmethod
from typing import Any, ClassVar, TypeVar

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV, StratifiedKFold

from tinystudent.errors import DataError, TinyStudentError

B = TypeVar("B", bound="Baseline")

BENCH_HINT = "pip install 'tinystudent[bench]'"


class Baseline(ABC):
    """fit on (texts, label ids), then class probabilities, parameter count and shipped size."""

    name: ClassVar[str]
    #: Trains for minutes: the benchmark hands it a cache dir, where it keeps its trained model
    #: under a content key.
    content_cached: ClassVar[bool] = False
    #: Learns from unlabeled texts too: the benchmark sets `pool` (its unlabeled pool) first.
    uses_pool: ClassVar[bool] = False

    @abstractmethod
    def fit(self: B, texts: list[str], labels: list[int], n_classes: int) -> B:
        """Train from scratch on these labeled texts; returns self for chaining."""

    @abstractmethod
    def predict_proba(self, texts: list[str]) -> np.ndarray:
        """Probabilities, shape [len(texts), n_classes], rows summing to 1."""

    @abstractmethod
    def num_params(self) -> int:
        """Learned numbers the model needs at inference time (vocabulary strings excluded)."""

    @abstractmethod
    def size_bytes(self) -> int:
        """Bytes of what one would ship to predict: weights plus vocabulary/tokenizer."""

    def predict(self, texts: list[str]) -> np.ndarray:
        """Label ids: the most probable class of each text."""
        return np.asarray(self.predict_proba(texts).argmax(axis=1))


class NotFittedError(TinyStudentError):
    """predict/size was asked of a baseline before fit."""


def missing_extra(package: str) -> ImportError:
    """The ImportError raised when an optional baseline library is absent, with the fix."""
    return ImportError(f"this baseline needs the package {package!r}: {BENCH_HINT}")


def check_fit_inputs(texts: list[str], labels: list[int], n_classes: int) -> None:
    """Reject inputs that would otherwise fail deep inside a library with an obscure message."""
    if len(texts) != len(labels):
        raise DataError(f"{len(texts)} texts but {len(labels)} labels")
    if not texts:
        raise DataError("no training texts")
    if n_classes < 2:
        raise DataError(f"n_classes must be at least 2, got {n_classes}")
    bad = [y for y in labels if not 0 <= y < n_classes]
    if bad:
        raise DataError(f"label id {bad[0]} is outside 0..{n_classes - 1}")
    if len(set(labels)) < 2:
        raise DataError("the training labels hold a single class; a classifier needs two")


def fit_logreg(features: Any, labels: list[int], c: float | None, seed: int) -> LogisticRegression:
    """Logistic regression; with c=None the strength is chosen by CV on the training set only.

    A fixed C that suits 16 examples is wrong for 1,000, and tuning on the test split would be
    cheating, so the default picks C by stratified k-fold log-loss on the k-shot data itself
    (log-loss, not accuracy: on a handful of examples accuracy ties across most of the grid).
    """
    y = np.asarray(labels)
    base = LogisticRegression(C=1.0 if c is None else c, max_iter=2000, random_state=seed)
    counts = np.bincount(y)
    folds = int(min(5, counts[counts > 0].min()))  # every fold needs each class once
    if c is not None or folds < 2:
        return base.fit(features, y)
    search = GridSearchCV(
        base,
        {"C": list(np.logspace(-2, 3, 11))},
        cv=StratifiedKFold(folds),
        scoring="neg_log_loss",
        refit=True,
    )
    search.fit(features, y)
    best: LogisticRegression = search.best_estimator_
    return best


def full_proba(proba: np.ndarray, classes: np.ndarray | list[int], n_classes: int) -> np.ndarray:
    """Spread a model's columns (only the classes it saw) into all n_classes columns."""
    out = np.zeros((proba.shape[0], n_classes), dtype=np.float64)
    out[:, np.asarray(classes, dtype=int)] = proba
    return normalise_rows(out)


def normalise_rows(proba: np.ndarray) -> np.ndarray:
    """Rows summing to exactly 1; an all-zero row (no evidence at all) becomes uniform."""
    proba = np.clip(np.asarray(proba, dtype=np.float64), 0.0, None)
    sums = proba.sum(axis=1, keepdims=True)
    empty = sums[:, 0] <= 0
    proba[empty] = 1.0
    sums[empty] = proba.shape[1]
    return np.asarray(proba / sums)


def pickled_size(obj: object) -> int:
    """Bytes of a pickled object: a fair 'what you'd ship' for sklearn models."""
    return len(pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL))


def logreg_params(model: LogisticRegression) -> int:
    """Weights plus biases of a fitted logistic regression."""
    return int(model.coef_.size + model.intercept_.size)
