"""The model card: what a model is, where it came from and how good and fast it is.

Facts come from what the run left behind (a student directory inside a run directory has
`../report.json` and `../recipe.json`), else from `student.json` alone, plus what the export
measured itself. They are written twice: `card.json` for programs (the server's /metadata)
and `README.md` for people.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tinystudent.io import read_json

STUDENT_METRICS = (
    "accuracy",
    "macro_f1",
    "micro_f1",
    "subset_accuracy",
    "agreement_with_teacher",
    "pct_of_teacher",
)


def _read(path: Path) -> dict[str, Any] | None:
    if not path.exists():
        return None
    data: dict[str, Any] = read_json(path)
    return data


def run_facts(student_dir: str | Path) -> dict[str, Any]:
    """The card's facts about training: teacher, data, k, seed, metrics, recipe; whatever of
    it the run directory around `student_dir` (if any) and student.json hold."""
    sdir = Path(student_dir)
    meta = _read(sdir / "student.json") or {}
    report = _read(sdir.parent / "report.json")
    recipe = _read(sdir.parent / "recipe.json")
    facts: dict[str, Any] = {
        "name": (report or {}).get("name") or sdir.resolve().name,
        "kind": meta.get("kind"),
        "labels": meta.get("label_names", []),
        "params": meta.get("params"),
        "config": meta.get("config", {}),
        "teacher": None,
        "data": None,
        "metrics": {},
        "training": None,
    }
    if report:
        t = report.get("teacher") or {}
        keys = ("name", "accuracy", "macro_f1", "params") + (
            ("micro_f1", "subset_accuracy", "thresholds") if report.get("multi_label") else ()
        )
        facts["teacher"] = {k: t.get(k) for k in keys}
        facts["data"] = {
            k: report.get(k) for k in ("dataset", "k", "seed", "test_size", "transfer_size")
        }
        s = report.get("student") or {}
        facts["metrics"]["student (PyTorch)"] = {k: s[k] for k in STUDENT_METRICS if k in s}
    else:  # a bare student directory: metrics saved through `Student.save(extra=...)`, if any
        extra = {k: meta[k] for k in STUDENT_METRICS if k in meta}
        if extra:
            facts["metrics"]["student (PyTorch)"] = extra
    if recipe:
        facts["training"] = {
            "recipe": recipe.get("name"),
            "command": "tinystudent run <recipe> (the recipe is saved as recipe.json in the run)",
            "student": recipe.get("student"),
            "train": recipe.get("train"),
        }
    return facts


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.4f}" if abs(v) < 10 else f"{v:,.1f}"
    if isinstance(v, int):
        return f"{v:,}"
    return "-" if v is None else str(v)


def render_card(card: dict[str, Any]) -> str:
    """README.md of an export directory."""
    lines = [f"# {card['name']}: a tinystudent {card['kind']} classifier", ""]
    lines += [
        f"Labels: {', '.join(card['labels'])}. Parameters: {_fmt(card['params'])}.",
        "",
        "```python",
        "from tinystudent.inference import Predictor  # needs numpy, onnxruntime, tokenizers",
        'Predictor.load("<this directory>").predict(["a text to classify"])',
        "```",
        "",
        "Serve it: `tinystudent serve <this directory>` (POST /predict, GET /health, "
        "GET /metadata).",
        "",
    ]
    if card.get("teacher"):
        t = card["teacher"]
        lines += [
            "## Teacher",
            f"{t['name']}: accuracy {_fmt(t['accuracy'])}, macro-F1 {_fmt(t['macro_f1'])}, "
            f"{_fmt(t['params'])} parameters.",
            "",
        ]
    if card.get("data"):
        d = card["data"]
        lines += [
            "## Data",
            f"{d['dataset']}: k = {d['k']} labelled examples per class, seed {d['seed']}; "
            f"transfer set of {_fmt(d['transfer_size'])} texts; "
            f"{_fmt(d['test_size'])} held-out test texts.",
            "",
        ]
    if card.get("metrics"):
        keys = sorted({k for m in card["metrics"].values() for k in m})
        lines += ["## Metrics (held-out test split)", ""]
        lines += ["| model | " + " | ".join(keys) + " |", "|---" * (len(keys) + 1) + "|"]
        for name, m in card["metrics"].items():
            lines.append(f"| {name} | " + " | ".join(_fmt(m.get(k)) for k in keys) + " |")
        lines.append("")
    lines += ["## Size and speed", ""]
    for name, size in card.get("size_bytes", {}).items():
        lines.append(f"- `{name}`: {size / 1e6:.2f} MB")
    lat = card.get("latency")
    if lat:
        lines.append(
            f"- {lat['variant']} graph, {lat['threads']} thread, "
            f"{'fused kernel + ' if lat.get('kernel') == 'fused' else ''}onnxruntime, tokenisation "
            f"included: batch 1 p50 {lat['p50_ms']:.3f} ms, p95 {lat['p95_ms']:.3f} ms; "
            f"batch 256 {lat['throughput_tps']:,.0f} texts/s"
        )
    lines.append("")
    exp = card.get("export", {})
    lines += [
        "## Provenance",
        f"- exported by: `{exp.get('command')}` on {exp.get('date')} "
        f"(tinystudent {exp.get('tinystudent_version')}, ONNX opset {exp.get('opset')})",
        f"- export check on {exp.get('check_texts')} texts: fp32 graph vs PyTorch max "
        f"|diff p| = {exp.get('fp32_max_abs_diff', float('nan')):.1e}"
        + (
            f"; int8 agrees with fp32 on {100 * exp['int8_agreement_with_fp32']:.2f}%"
            if "int8_agreement_with_fp32" in exp
            else ""
        ),
    ]
    if card.get("training"):
        tr = card["training"]
        lines += [
            f"- trained by: {tr['command']}; recipe `{tr['recipe']}`",
            f"- student options: `{tr['student']}`",
            f"- training options: `{tr['train']}`",
        ]
    lines += ["", f"Student config: `{card['config']}`", ""]
    return "\n".join(lines)
