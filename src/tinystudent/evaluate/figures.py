"""The report's figures as PNG bytes: confusion matrix, reliability diagram, training history.

Each takes plain arrays (no run directory), so a test can draw one from a handful of numbers.
matplotlib is imported inside `new_figure`, only when a figure is drawn.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np

from tinystudent.evaluate.html import figure_png, new_figure
from tinystudent.evaluate.metrics import calibration_bins, expected_calibration_error

COLORS = {"teacher": "#c0392b", "student": "#1f5fa8"}
ANNOTATE_MAX_CLASSES = 12  # beyond this, counts in the cells are unreadable


def confusion_counts(labels: Sequence[int], pred: Sequence[int], n_classes: int) -> np.ndarray:
    """counts[gold, predicted]."""
    counts = np.zeros((n_classes, n_classes), dtype=np.int64)
    np.add.at(counts, (np.asarray(labels, dtype=np.int64), np.asarray(pred, dtype=np.int64)), 1)
    return counts


def confusion_png(
    labels: Sequence[int], probs: np.ndarray, label_names: Sequence[str], title: str
) -> bytes:
    """Rows gold, columns predicted; colour is the share of the gold row (so classes of any
    size read alike), the number is the count."""
    n = len(label_names)
    counts = confusion_counts(labels, probs.argmax(1), n)
    share = counts / np.maximum(counts.sum(1, keepdims=True), 1)
    side = min(9.0, max(3.6, 0.45 * n + 2.2))
    fig = new_figure(side + 0.8, side)
    ax = fig.subplots()
    im = ax.imshow(share, cmap="Blues", vmin=0.0, vmax=1.0)
    ticks = list(range(n))
    ax.set_xticks(ticks)
    ax.set_yticks(ticks)
    small = 8 if n <= ANNOTATE_MAX_CLASSES else 5
    ax.set_xticklabels(
        label_names, rotation=45 if n > 3 else 0, ha="right" if n > 3 else "center", fontsize=small
    )
    ax.set_yticklabels(label_names, fontsize=small)
    ax.set_xlabel("predicted")
    ax.set_ylabel("gold")
    accuracy = np.trace(counts) / max(1, counts.sum())
    ax.set_title(f"{title}: accuracy {accuracy:.3f}", fontsize=10)
    if n <= ANNOTATE_MAX_CLASSES:
        for i in range(n):
            for j in range(n):
                ax.text(
                    j,
                    i,
                    str(counts[i, j]),
                    ha="center",
                    va="center",
                    fontsize=8,
                    color="white" if share[i, j] > 0.55 else "black",
                )
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04, label="share of the gold class")
    return figure_png(fig)


def reliability_png(
    labels: Sequence[int], systems: Mapping[str, np.ndarray], bins: int = 15
) -> bytes:
    """Accuracy against mean confidence per confidence bin (the bins ECE sums over), one line
    per system, the diagonal being perfect calibration; below, how many texts fall in each."""
    fig = new_figure(5.6, 5.0)
    top, bottom = fig.subplots(2, 1, sharex=True, gridspec_kw={"height_ratios": [3, 1]})
    top.plot([0, 1], [0, 1], color="grey", lw=1, ls="--", label="perfectly calibrated")
    edges = np.linspace(0, 1, bins + 1)
    width = 1.0 / bins / (len(systems) + 1)
    for i, (name, probs) in enumerate(systems.items()):
        color = COLORS.get(name)
        rows = calibration_bins(list(labels), probs, bins)
        conf = [c for n, _, c in rows if n]
        acc = [a for n, a, _ in rows if n]
        ece = expected_calibration_error(list(labels), probs, bins)
        top.plot(conf, acc, marker="o", ms=4, color=color, label=f"{name} (ECE {ece:.3f})")
        counts = [n for n, _, _ in rows]
        bottom.bar(edges[:-1] + (i + 0.5) * width, counts, width=width, color=color, align="edge")
    top.set_xlim(0, 1)
    top.set_ylim(0, 1.02)
    top.set_ylabel("accuracy in the bin")
    top.set_title("reliability on the test split", fontsize=10)
    top.grid(alpha=0.3)
    top.legend(fontsize=8, loc="upper left")
    bottom.set_xlabel("confidence (top probability)")
    bottom.set_ylabel("texts")
    bottom.grid(alpha=0.3)
    fig.tight_layout()
    return figure_png(fig)


def history_png(history: Sequence[Mapping[str, float]], best_epoch: int | None) -> bytes:
    """The student's per-epoch training losses (left axis) and its agreement with the teacher
    on the held-out slice of the transfer set (right axis); the kept epoch is marked."""
    epochs = [float(row["epoch"]) for row in history]
    parts = [k for k in history[0] if k not in ("epoch", "val_agreement")]
    losses = [k for k in parts if not k.startswith("schedule.")]
    from matplotlib.ticker import MaxNLocator

    fig = new_figure(6.4, 3.8)
    ax = fig.subplots()
    for key in losses:
        ax.plot(epochs, [row.get(key, math.nan) for row in history], marker=".", label=key)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("epoch")
    ax.set_ylabel("training loss (mean per text)")
    ax.grid(alpha=0.3)
    lines, names = ax.get_legend_handles_labels()
    agreement = [row.get("val_agreement", math.nan) for row in history]
    if any(not math.isnan(a) for a in agreement):
        right = ax.twinx()
        lines += right.plot(epochs, agreement, color="black", marker="o", ms=4, ls="-", lw=1.2)
        names.append("held-out agreement with teacher")
        right.set_ylabel("agreement")
        seen = [a for a in agreement if not math.isnan(a)]
        right.set_ylim(max(0.0, min(seen) - 0.03), min(1.0, max(seen) + 0.03))
    if best_epoch:
        lines.append(ax.axvline(best_epoch, color="grey", ls=":", lw=1))
        names.append(f"kept epoch ({best_epoch})")
    # below the axes: inside, it hides the curves it names
    ax.legend(lines, names, fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.18), ncol=2)
    ax.set_title("student training", fontsize=10)
    fig.tight_layout()
    return figure_png(fig)
