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
