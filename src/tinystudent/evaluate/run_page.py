"""report.html: one self-contained page per run, from what the run directory keeps.

It reads report.json (systems, transfer set, training history) and predictions.json (test
labels and both systems' probabilities), so `tinystudent report RUN_DIR` rebuilds it without
loading a model. Without matplotlib the page keeps its tables and says what is missing.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Any

import numpy as np

from tinystudent.errors import TinyStudentError
from tinystudent.evaluate import html as h
from tinystudent.evaluate.figures import confusion_png, history_png, reliability_png
from tinystudent.evaluate.predictions import SplitPredictions, load_predictions
from tinystudent.evaluate.report import format_params, format_size, system_rows
from tinystudent.io import read_json, write_text

log = logging.getLogger(__name__)

FILENAME = "report.html"
TEXT_CHARS = 400  # a disagreement's text is cut here (BBC articles run to pages)


def _num(v: Any, digits: int = 3) -> str | None:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return None
    return f"{v:.{digits}f}"


def systems_table(report: dict[str, Any]) -> str:
    """The report.md table: every system against the teacher, latency where it was measured."""
    t = report["teacher"]
    rows = system_rows(report)
    with_latency = any("p50_ms" in e for _, e in rows)
    head = ["system", "model", "accuracy", "macro-F1", "% of teacher", "agreement", "ECE"]
    head += ["params", "x smaller", "size on disk", "texts/s"]
    head += ["p50 ms"] * with_latency
    body = []
    for role, e in rows:
        pct = f"{100 * e['accuracy'] / t['accuracy']:.1f}%" if t["accuracy"] else None
        row = [role, e["name"], _num(e["accuracy"]), _num(e["macro_f1"]), pct]
        row.append(None if role == "teacher" else _num(e.get("agreement_with_teacher")))
        row += [_num(e.get("ece")), format_params(e["params"])]
        row += [f"{t['params'] / e['params']:.0f}x", format_size(e["size_bytes"])]
        row.append(f"{e['throughput']:,.0f}")
        if with_latency:
            row.append(_num(e.get("p50_ms"), 2))
        body.append(row)
    return h.table(head, body, numeric=range(2, len(head)))


def transfer_section(report: dict[str, Any]) -> list[str]:
    """Where the texts the student learnt from came from (gold, pool, generated, augmented)."""
    sources: dict[str, int] = report.get("transfer_sources") or {}
    total = sum(sources.values()) or report.get("transfer_size", 0)
    parts = [h.heading("Transfer set")]
    if not sources:
        parts.append(h.paragraph(f"{total} texts (this run did not record their sources)."))
        return parts
    rows = [[name, n, f"{100 * n / total:.1f}%"] for name, n in sources.items()]
    rows.append(["total", total, "100.0%"])
    parts.append(h.table(["source", "texts", "share"], rows, numeric=[1, 2]))
    labeling = (report.get("labeling") or {}).get("transfer") or {}
    if labeling:
        parts.append(
            h.paragraph(
                f"Teacher labels: {labeling.get('computed', 0)} computed, "
                f"{labeling.get('hits', 0)} read from the soft-label cache."
            )
        )
    return parts


def disagreements(preds: SplitPredictions, top: int) -> list[tuple[int, float]]:
    """(test index, total-variation distance) of the `top` texts where the student's
    probabilities are furthest from the teacher's, furthest first (ties: split order)."""
    distance = 0.5 * np.abs(preds.teacher - preds.student).sum(1)
    order = sorted(range(len(distance)), key=lambda i: (-distance[i], i))[:top]
    return [(i, float(distance[i])) for i in order]


def disagreement_section(preds: SplitPredictions, top: int) -> list[str]:
    names = preds.label_names

    def said(probs: np.ndarray, i: int) -> str:
        best = int(probs[i].argmax())
        return f"{names[best]} ({probs[i, best]:.2f})"

    rows = []
    for rank, (i, d) in enumerate(disagreements(preds, top), 1):
        text = preds.texts[i]
        if len(text) > TEXT_CHARS:
            text = text[:TEXT_CHARS] + "…"
        rows.append(
            [
                rank,
                f"{d:.3f}",
                text,
                names[preds.labels[i]],
                said(preds.teacher, i),
                said(preds.student, i),
            ]
        )
    return [
        h.heading(f"Where student and teacher disagree most ({len(rows)} test texts)"),
        h.paragraph(
            "Distance is the total variation between the two probability vectors "
            "(0: the same, 1: no overlap); the label is each system's top class (probability)."
        ),
        h.table(
            ["#", "distance", "text", "gold", "teacher", "student"], rows, numeric=[0, 1], wrap=[2]
        ),
    ]


def training_section(training: dict[str, Any], figures: bool) -> list[str]:
    history = training.get("history") or []
    parts = [h.heading("Student training")]
    if not history:
        parts.append(h.paragraph("This run kept no per-epoch history."))
        return parts
    best = int(training.get("best_epoch") or 0)
    summary = f"{len(history)} epochs in {training.get('seconds', 0):.1f} s"
    if best:
        summary += f"; kept the weights of epoch {best}"
        agreement = training.get("best_val_agreement")
        if agreement is not None and not math.isnan(agreement):
            summary += f" (held-out agreement with the teacher {agreement:.3f})"
    parts.append(h.paragraph(summary + "."))
    if figures:
        parts.append(h.image(history_png(history, best or None), "student training history"))
    keys = [k for k in history[0] if k != "epoch"]
    rows = [[int(r["epoch"]), *(_num(r.get(k), 4) for k in keys)] for r in history]
    parts.append(h.table(["epoch", *keys], rows, numeric=range(len(keys) + 1)))
    return parts


def prediction_figures(preds: SplitPredictions) -> list[str]:
    names = preds.label_names
    confusions = [
        h.image(
            confusion_png(preds.labels, probs, names, role),
            f"confusion matrix of the {role} on the test split",
            f"{role}: rows are gold labels, columns predictions; colour is the row's share.",
        )
        for role, probs in (("teacher", preds.teacher), ("student", preds.student))
    ]
    reliability = h.image(
        reliability_png(preds.labels, {"teacher": preds.teacher, "student": preds.student}),
        "reliability diagram of teacher and student",
        "Accuracy against confidence in 15 equal-width bins (those ECE is computed on); "
        "below the diagonal is over-confident.",
    )
    return [
        h.heading("Confusion matrices (test split)"),
        h.figures(confusions),
        h.heading("Calibration"),
        reliability,
    ]


def render_run_page(
    report: dict[str, Any],
    preds: SplitPredictions | None,
    top: int = 10,
    figures: bool = True,
) -> str:
    """The whole page as a string; `figures=False` leaves out every image."""
    title = f"tinystudent run: {report.get('name', 'run')}"
    meta = (
        f"{report['dataset']}, k = {report['k']} per class, seed {report['seed']}, "
        f"{report['test_size']} test texts, transfer set {report['transfer_size']} texts; "
        f"tinystudent {report.get('tinystudent_version', '?')}, "
        f"{report.get('torch_threads', '?')} torch threads, {report.get('seconds', 0):.0f} s."
    )
    body = [h.heading(title, 1), h.paragraph(meta, "meta")]
    if not figures:
        body.append(
            h.paragraph(
                "matplotlib is not installed: figures left out "
                "(pip install 'tinystudent[report]', then `tinystudent report RUN_DIR`).",
                "note",
            )
        )
    body += [h.heading("Teacher and student on the test split"), systems_table(report)]
    body += transfer_section(report)
    if preds is None:
        body.append(
            h.paragraph(
                "This run predates predictions.json: no confusion matrices, calibration "
                "or disagreements. `tinystudent run RUN_DIR/recipe.yaml` adds it "
                "(every finished stage is skipped).",
                "note",
            )
        )
    elif figures:
        body += prediction_figures(preds)
    body += training_section(report.get("training") or {}, figures)
    if preds is not None:
        body += disagreement_section(preds, top)
    body.append(
        h.paragraph(
            "Built from report.json and predictions.json in this directory; "
            "`tinystudent report RUN_DIR` rebuilds it.",
            "meta",
        )
    )
    return h.page(title, body)


def read_run_report(run_dir: Path) -> dict[str, Any]:
    path = run_dir / "report.json"
    if not path.is_file():
        raise TinyStudentError(
            f"{run_dir}: no report.json (not a finished run directory: `tinystudent run` "
            "writes one)"
        )
    report = read_json(path)
    if not isinstance(report, dict) or not {"teacher", "student", "systems"} <= set(report):
        raise TinyStudentError(
            f"{path}: not a classification run's report (teacher, student, systems); "
            "embed-distill and rationale runs have no report.html"
        )
    return dict(report)


def write_report_html(run_dir: str | Path, top: int = 10) -> Path:
    """(Re)build `RUN_DIR/report.html` from the run's report.json and predictions.json;
    returns its path. Raises TinyStudentError for a directory that is not a finished run."""
    if top < 0:
        raise TinyStudentError(f"report: top must be 0 or more, not {top}")
    root = Path(run_dir)
    report = read_run_report(root)
    preds = load_predictions(root)
    figures = h.have_matplotlib()
    if not figures:
        log.warning("matplotlib is not installed: report.html is written without figures")
    path = root / FILENAME
    write_text(path, render_run_page(report, preds, top=top, figures=figures))
    return path
