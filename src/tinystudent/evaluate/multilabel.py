"""Multi-label scores and per-label decision thresholds.

Metrics: micro-F1 (every text-label decision pooled), macro-F1 (the mean of per-label F1, so
a rare label counts as much as a common one) and subset accuracy (the whole label set exactly
right). Thresholds: for each label, the cut on the probabilities with the best F1 against
reference decisions; the caller decides what the reference is (the k-shot gold labels out of
fold for the teacher, the teacher's decisions on held-out transfer text for the student),
never the test split.
"""

from __future__ import annotations

import numpy as np

#: Thresholds tried per label; ties go to the one nearest 0.5.
THRESHOLD_GRID = np.round(np.arange(0.05, 0.951, 0.025), 3)


def multilabel_metrics(targets: np.ndarray | list[list[int]], pred: np.ndarray) -> dict[str, float]:
    """micro-F1, macro-F1 and subset accuracy of multi-hot `pred` against multi-hot `targets`;
    `accuracy` repeats subset accuracy (the one headline figure single-label tools read)."""
    from sklearn.metrics import f1_score  # lazy: sklearn slows CLI start-up

    y = np.asarray(targets, dtype=np.uint8)
    p = np.asarray(pred, dtype=np.uint8)
    if y.shape != p.shape:
        raise ValueError(f"predictions of shape {p.shape} for targets of shape {y.shape}")
    subset = float((y == p).all(1).mean()) if len(y) else float("nan")
    return {
        "micro_f1": float(f1_score(y, p, average="micro", zero_division=0)),
        "macro_f1": float(f1_score(y, p, average="macro", zero_division=0)),
        "subset_accuracy": subset,
        "accuracy": subset,
    }


def decide(probs: np.ndarray, thresholds: list[float] | np.ndarray) -> np.ndarray:
    """Multi-hot decisions: a label is on where its probability reaches its threshold."""
    return (np.asarray(probs) >= np.asarray(thresholds)[None, :]).astype(np.uint8)


def best_threshold(y: np.ndarray, p: np.ndarray, grid: np.ndarray = THRESHOLD_GRID) -> float:
    """The threshold on `p` with the best F1 for binary truths `y` (nearest 0.5 on a tie)."""
    truth = np.asarray(y).astype(bool)
    best, best_f1 = 0.5, -1.0
    for t in sorted(grid, key=lambda t: abs(t - 0.5)):
        on = np.asarray(p) >= t
        denom = float(on.sum() + truth.sum())
        f1 = 2 * float((on & truth).sum()) / denom if denom else 1.0
        if f1 > best_f1 + 1e-12:
            best, best_f1 = float(t), f1
    return best


def choose_thresholds(probs: np.ndarray, reference: np.ndarray) -> list[float]:
    """One threshold per label column: the best F1 of `probs` against multi-hot `reference`."""
    probs, reference = np.asarray(probs), np.asarray(reference)
    if probs.shape != reference.shape:
        raise ValueError(f"probabilities {probs.shape} vs reference decisions {reference.shape}")
    return [best_threshold(reference[:, j], probs[:, j]) for j in range(probs.shape[1])]
