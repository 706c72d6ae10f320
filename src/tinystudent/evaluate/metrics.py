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
        "ece": expected_calibration_error(labels, probs),
    }


def calibration_bins(
    labels: list[int], probs: np.ndarray, bins: int = 15
) -> list[tuple[int, float, float]]:
    """(texts, accuracy, mean confidence) of each equal-width confidence bin, empty bins
    included as (0, nan, nan): what ECE sums and what a reliability diagram draws."""
    conf = probs.max(1)
    right = probs.argmax(1) == np.asarray(labels)
    which = np.minimum((conf * bins).astype(int), bins - 1)  # a confidence of 1.0: last bin
    out = []
    for b in range(bins):
        inside = which == b
        if inside.any():
            out.append((int(inside.sum()), float(right[inside].mean()), float(conf[inside].mean())))
        else:
            out.append((0, float("nan"), float("nan")))
    return out


def expected_calibration_error(labels: list[int], probs: np.ndarray, bins: int = 15) -> float:
    """How far the top probability is from being right that often (Guo et al.'s ECE):
    texts binned by confidence into `bins` equal-width bins, |accuracy - confidence| per bin,
    weighted by the bin's share of texts. 0 = calibrated; a user reads these probabilities."""
    if len(labels) == 0:
        return float("nan")
    gap = 0.0
    for n, acc, conf in calibration_bins(labels, probs, bins):
        if n:
            gap += n / len(labels) * abs(acc - conf)
    return float(gap)


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
