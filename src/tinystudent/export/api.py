"""`export_student`: a saved student's directory in, a self-contained export directory out.

The thin, path-taking entry point behind `tinystudent export`: it loads the student, exports
it (`export_onnx`), scores the exported graphs on the run's held-out test split when the
student sits in a run directory, times the light runtime, and writes the model card.
"""

from __future__ import annotations

import sys
import time
from enum import Enum
from pathlib import Path
from typing import Any

from tinystudent import __version__
from tinystudent.errors import TinyStudentError
from tinystudent.export.card import render_card, run_facts
from tinystudent.export.onnx_export import EDGE_TEXTS, TRACE_TEXTS, export_onnx
from tinystudent.inference.predictor import CARD_FILE, Predictor, Variant
from tinystudent.io import read_json, write_json, write_text

LATENCY_THREADS = 1


class ExportFormat(str, Enum):
    ONNX = "onnx"


def resolve_student_dir(model_dir: str | Path) -> Path:
    """A student directory, or a run directory holding student/."""
    d = Path(model_dir)
    if (d / "student").is_dir() and not (d / "student.json").exists():
        d = d / "student"
    if not (d / "student.json").exists():
        raise TinyStudentError(f"{model_dir}: no student.json; is this a saved student?")
    return d


def default_out_dir(student_dir: Path) -> Path:
    """Beside the student, never inside it: runs/demo/student -> runs/demo/student-onnx."""
    return student_dir.with_name(student_dir.name + "-onnx")


def held_out_split(student_dir: Path, label_names: list[str]) -> tuple[list[str], list[Any]] | None:
    """The run's held-out test texts and labels (multi-hot rows for a multi-label run), if
    the student sits in a run directory."""
    path = student_dir.parent / "data" / "split.json"
    if not path.exists():
        return None
    split = read_json(path)
    if split.get("label_names") != label_names or not split.get("test_texts"):
        return None
    if split.get("multi_label"):
        return list(split["test_texts"]), list(split["test_targets"])
    return list(split["test_texts"]), [int(y) for y in split["test_labels"]]


def _score(
    out: Path, variants: list[Variant], split: tuple[list[str], list[Any]]
) -> dict[str, Any]:
    from tinystudent.evaluate.metrics import classification_metrics
    from tinystudent.evaluate.multilabel import decide, multilabel_metrics

    texts, labels = split
    predictors = {v: Predictor.load(out, v) for v in variants}
    probs = {v: p.predict_proba(texts) for v, p in predictors.items()}
    metrics: dict[str, Any] = {}
    thresholds = predictors[variants[0]].thresholds
    if thresholds is not None:
        decisions = {v: decide(p, thresholds) for v, p in probs.items()}
        for v, d in decisions.items():
            metrics[f"ONNX {v}"] = multilabel_metrics(labels, d)
            if v != "fp32":
                same = (d == decisions["fp32"]).all(1)
                metrics[f"ONNX {v}"]["agreement_with_fp32"] = float(same.mean())
        return metrics
    for v, p in probs.items():
        metrics[f"ONNX {v}"] = classification_metrics(labels, p)
        if v != "fp32":
            same = p.argmax(1) == probs["fp32"].argmax(1)
            metrics[f"ONNX {v}"]["agreement_with_fp32"] = float(same.mean())
    return metrics


def _latency(out: Path, texts: list[str]) -> dict[str, Any]:
    """Batch-1 latency and batch-256 throughput of the default graph on one thread."""
    from tinystudent.evaluate.speed import latency_ms, throughput_tps

    predictor = Predictor.load(out, threads=LATENCY_THREADS)
    row: dict[str, Any] = {
        "variant": predictor.variant,
        "kernel": predictor.kernel,
        "threads": LATENCY_THREADS,
    }
    row.update(latency_ms(predictor.predict_proba, texts, n=200))
    row["throughput_tps"] = throughput_tps(predictor.predict_proba, texts, min_seconds=1.0)
    return row


def export_student(
    model_dir: str | Path,
    out_dir: str | Path | None = None,
    fmt: ExportFormat | str = ExportFormat.ONNX,
    int8: bool = False,
    measure: bool = True,
    command: str | None = None,
) -> Path:
    """Export the student in `model_dir` (or a run directory) and write its model card.
    Returns the export directory."""
    from tinystudent.students import load_student

    if ExportFormat(fmt) is not ExportFormat.ONNX:  # pragma: no cover - one format so far
        raise TinyStudentError(f"--format: unsupported {fmt}")
    student_dir = resolve_student_dir(model_dir)
    out = Path(out_dir) if out_dir else default_out_dir(student_dir)
    if out.resolve() == student_dir.resolve():
        raise TinyStudentError("--out: must not be the student directory itself")
    student = load_student(student_dir)
    split = held_out_split(student_dir, student.label_names)
    facts = export_onnx(student, out, int8=int8, check_texts=split[0] if split else None)

    card = run_facts(student_dir)
    variants: list[Variant] = ["fp32", "int8"] if int8 else ["fp32"]
    if split:
        card["metrics"].update(_score(out, variants, split))
    card["size_bytes"] = facts.pop("size_bytes")
    sample = split[0] if split else TRACE_TEXTS + EDGE_TEXTS
    card["latency"] = _latency(out, sample) if measure else None
    card["export"] = {
        "command": command or " ".join(["tinystudent", *sys.argv[1:]]),
        "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "tinystudent_version": __version__,
        "student_dir": str(student_dir),
        **facts,
    }
    write_json(out / CARD_FILE, card)
    write_text(out / "README.md", render_card(card))
    return out
