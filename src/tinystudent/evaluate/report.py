"""The side-by-side table (teacher vs student) printed by `run`/`demo` and saved as report.md."""

from __future__ import annotations

from typing import Any


def format_size(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} GB"


def format_params(n: float) -> str:
    return f"{n / 1e6:.2f}M" if n >= 1e6 else f"{n / 1e3:.0f}K"


def system_rows(report: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """(role, entry) of every system the report compares, teacher first (the page's order too)."""
    return [("teacher", report["teacher"]), *report["systems"].items()]


def render_markdown(report: dict[str, Any]) -> str:
    """A Markdown table of every system in the report, teacher first."""
    if report.get("multi_label"):
        return render_multilabel(report)
    t = report["teacher"]
    rows = system_rows(report)
    head = (
        "| system | model | accuracy | macro-F1 | % of teacher | agreement | ECE | params | "
        "x smaller | size on disk | texts/s |\n|---|---|---|---|---|---|---|---|---|---|---|"
    )
    lines = [
        f"**{report['dataset']}**, k = {report['k']} per class, seed {report['seed']}, "
        f"{report['test_size']} test texts, transfer set {report['transfer_size']} texts"
        + (
            " (" + ", ".join(f"{k} {v}" for k, v in report["transfer_sources"].items()) + ")"
            if report.get("transfer_sources")
            else ""
        )
        + (
            f"; {report['transfer_dropped_unsure']} machine-made texts dropped as unsure "
            "(generate.min_confidence)"
            if report.get("transfer_dropped_unsure")
            else ""
        ),
        "",
        head,
    ]
    for role, r in rows:
        pct = 100 * r["accuracy"] / t["accuracy"] if t["accuracy"] else float("nan")
        agree = "-" if role == "teacher" else f"{r['agreement_with_teacher']:.3f}"
        ece = f"{r['ece']:.3f}" if "ece" in r else "-"  # reports made before it was measured
        lines.append(
            f"| {role} | {r['name']} | {r['accuracy']:.3f} | {r['macro_f1']:.3f} | {pct:.1f}% | "
            f"{agree} | {ece} | {format_params(r['params'])} | {t['params'] / r['params']:.0f}x | "
            f"{format_size(r['size_bytes'])} | {r['throughput']:,.0f} |"
        )
    return "\n".join(lines) + "\n"


def render_multilabel(report: dict[str, Any]) -> str:
    """The multi-label table: micro-F1 (and its % of the teacher's), macro-F1, subset accuracy,
    label-set agreement with the teacher, each system at its own per-label thresholds."""
    t = report["teacher"]
    rows = [("teacher", t)] + [(name, s) for name, s in report["systems"].items()]
    lines = [
        f"**{report['dataset']}** (multi-label: {', '.join(report['label_names'])}), "
        f"k = {report['k']} per label, seed {report['seed']}, {report['test_size']} test texts, "
        f"transfer set {report['transfer_size']} texts",
        "",
        "| system | model | micro-F1 | macro-F1 | subset acc. | % of teacher (micro-F1) | "
        "agreement (label sets) | params | x smaller | size on disk | texts/s |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for role, r in rows:
        pct = 100 * r["micro_f1"] / t["micro_f1"] if t["micro_f1"] else float("nan")
        agree = "-" if role == "teacher" else f"{r['agreement_with_teacher']:.3f}"
        lines.append(
            f"| {role} | {r['name']} | {r['micro_f1']:.3f} | {r['macro_f1']:.3f} | "
            f"{r['subset_accuracy']:.3f} | {pct:.1f}% | {agree} | {format_params(r['params'])} | "
            f"{t['params'] / r['params']:.0f}x | {format_size(r['size_bytes'])} | "
            f"{r['throughput']:,.0f} |"
        )
    return "\n".join(lines) + "\n"
