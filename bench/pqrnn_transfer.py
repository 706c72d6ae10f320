"""The demo's transfer set with its teacher's soft labels, built by the demo's own stages.

`tinystudent demo` (the embedded default recipe) splits Rotten Tomatoes (k = 64 per class,
2,000 held out), fine-tunes MiniLM-L6 on the 128 gold texts and labels the transfer set
(the gold texts + the deduplicated unlabeled pool, 16,442 texts) with it. Here the same
stages run into a run directory (`runs/pqrnn-demo-transfer` by default) and resume from it
through `stages.json` and the label cache, so the teacher runs once; the student stage is
not run (the bench trains its own pQRNN students on what this returns).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tinystudent.evaluate.speed import torch_threads
from tinystudent.pipeline import RunDir, label_all, stage_data, stage_teacher, stage_transfer
from tinystudent.recipe import default_recipe

ROOT = Path(__file__).resolve().parents[1]
RUN_DIR = ROOT / "runs" / "pqrnn-demo-transfer"


@dataclass(frozen=True)
class DemoTransfer:
    """The transfer texts, their teacher probabilities and gold ids (-1: none), and the test
    split with the teacher's probabilities on it."""

    texts: list[str]
    probs: np.ndarray
    labels: list[int]
    label_names: list[str]
    test_texts: list[str]
    test_labels: list[int]
    teacher_test_probs: np.ndarray


def demo_transfer(run_dir: str | Path | None = None) -> DemoTransfer:
    """Run (or resume) the demo's data, teacher, transfer and label stages."""
    run_dir = run_dir or RUN_DIR
    recipe = default_recipe()
    with torch_threads(recipe.threads):  # the demo's pinned threads: the demo's labels
        run = RunDir(run_dir, recipe)
        split = stage_data(run)
        teacher = stage_teacher(run, split)
        texts, labels, _ = stage_transfer(run, split)
        probs, test_probs, _, _ = label_all(run, teacher, texts, split.test_texts)
    return DemoTransfer(
        texts,
        np.asarray(probs, dtype=np.float32),
        labels,
        list(split.label_names),
        split.test_texts,
        split.test_labels,
        np.asarray(test_probs, dtype=np.float32),
    )


if __name__ == "__main__":
    import time

    start = time.perf_counter()
    d = demo_transfer()
    acc = float((d.teacher_test_probs.argmax(1) == np.array(d.test_labels)).mean())
    print(
        f"transfer {len(d.texts)} texts, teacher test accuracy {acc:.4f}, "
        f"{time.perf_counter() - start:.0f} s"
    )
