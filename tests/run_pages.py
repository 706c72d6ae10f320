"""A finished run directory made by hand for the report page tests: report.json and
predictions.json, no model.

Three classes, 60 test texts; the teacher is right on most, the student noisier, and one
text that looks like markup (`<script>`) is the one they disagree on most.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from tinystudent.evaluate import classification_metrics
from tinystudent.evaluate.predictions import SplitPredictions, save_predictions
from tinystudent.io import write_json

SCRIPT_TEXT = "<script>alert(1)</script> & a 'quoted' \"text\""
NAMES = ["business", "sport", "tech"]


def make_predictions(n: int = 60, seed: int = 0) -> SplitPredictions:
    rng = np.random.default_rng(seed)
    labels = [i % 3 for i in range(n)]
    teacher = rng.dirichlet([1.0, 1.0, 1.0], size=n)
    teacher[np.arange(n), labels] += 2.0  # mostly right
    teacher /= teacher.sum(1, keepdims=True)
    student = 0.6 * teacher + 0.4 * rng.dirichlet([1.0, 1.0, 1.0], size=n)
    texts = [f"test text number {i}" for i in range(n)]
    texts[7] = SCRIPT_TEXT
    teacher[7] = [0.98, 0.01, 0.01]
    student[7] = [0.01, 0.01, 0.98]
    return SplitPredictions(NAMES, texts, labels, teacher, student)


def make_report(preds: SplitPredictions) -> dict[str, Any]:
    def entry(name: str, probs: np.ndarray, params: int) -> dict[str, Any]:
        e: dict[str, Any] = {"name": name, **classification_metrics(preds.labels, probs)}
        return e | {"params": params, "size_bytes": 4 * params, "throughput": 100.0}

    teacher = entry("minilm-l6", preds.teacher, 22_700_000)
    student = entry("pqrnn", preds.student, 231_000)
    agree = preds.student.argmax(1) == preds.teacher.argmax(1)
    student["agreement_with_teacher"] = float(agree.mean())
    student["pct_of_teacher"] = 100 * student["accuracy"] / teacher["accuracy"]
    history = [
        {"epoch": float(e), "kd": 1.0 / e, "ce": 0.5 / e, "val_agreement": 0.6 + 0.05 * e}
        for e in range(1, 5)
    ]
    return {
        "name": "synthetic",
        "tinystudent_version": "0.1.0",
        "dataset": "synthetic.csv",
        "k": 8,
        "seed": 0,
        "label_names": NAMES,
        "test_size": len(preds.texts),
        "transfer_size": 1024,
        "transfer_sources": {"gold": 24, "pool": 600, "generated": 300, "augmented": 100},
        "torch_threads": 1,
        "teacher": teacher,
        "student": student,
        "systems": {"student (distilled)": student},
        "labeling": {"transfer": {"total": 1024, "computed": 1000, "hits": 24}},
        "training": {
            "history": history,
            "best_epoch": 4,
            "best_val_agreement": 0.8,
            "seconds": 3.2,
            "resumed_from_epoch": 0,
        },
        "stages": {"data": "ran", "teacher": "ran", "label": "ran", "student": "ran"},
        "seconds": 12.0,
    }


def make_run_dir(root: Path) -> Path:
    """report.json and predictions.json in `root`, as a finished run leaves them."""
    preds = make_predictions()
    write_json(root / "report.json", make_report(preds))
    save_predictions(root, preds)
    return root
