"""Accuracy, macro-F1 and a quick throughput probe (tokenisation included)."""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np


def classification_metrics(labels: list[int], probs: np.ndarray) -> dict[str, float]:
    from sklearn.metrics import accuracy_score, f1_score  # lazy: sklearn slows CLI start-up

    pred = probs.argmax(1)
    return {
        "accuracy": float(accuracy_score(labels, pred)),
        "macro_f1": float(f1_score(labels, pred, average="macro")),
    }


def throughput(
    predict: Callable[[list[str]], object], texts: list[str], min_seconds: float = 1.0
) -> float:
    """Texts per second of `predict` on `texts` (repeated until `min_seconds` have passed)."""
    predict(texts[: min(8, len(texts))])  # warm-up: lazy init, allocator, memo tables
    n = 0
    start = time.perf_counter()
    while True:
        predict(texts)
        n += len(texts)
        elapsed = time.perf_counter() - start
        if elapsed >= min_seconds:
            return n / elapsed
