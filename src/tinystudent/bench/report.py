"""The bench's result: mean ± std over seeds per system, the comparison, tables, Markdown.

`document` assembles what `tinystudent bench` writes as `<out>/<name>.json` (its format is
what bench/render_readme.py and bench/report_page.py read); the table, caption, summary and
footer functions render it, as Markdown here and as HTML in bench/report_page.py.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from tinystudent.bench.spec import BenchSpec
from tinystudent.data import Split


def _stats(values: list[float]) -> dict[str, float]:
    arr = np.asarray([v for v in values if v is not None and not math.isnan(v)], dtype=float)
    if not len(arr):
        return {"mean": float("nan"), "std": float("nan"), "n": 0}
    std = float(arr.std(ddof=1)) if len(arr) > 1 else 0.0
    return {"mean": float(arr.mean()), "std": std, "n": int(len(arr))}


def summarise(spec: BenchSpec, rows: list[dict[str, Any]], systems: dict[str, Any]) -> None:
    """Mean ± std over seeds per system and k, and speed ratios against the headline teacher."""
    names = list(dict.fromkeys(r["system"] for r in rows))
    for name in names:
        entry = systems.setdefault(
            name, {"role": next(r["role"] for r in rows if r["system"] == name)}
        )
        by_k: dict[str, Any] = {}
        for k in spec.ks:
            rs = [r for r in rows if r["system"] == name and r["k"] == k]
            metrics = ["accuracy", "macro_f1", "pct_of_teacher", "agreement_with_teacher"]
            if any("int8_accuracy" in r for r in rs):
                metrics.append("int8_accuracy")
            by_k[str(k)] = {m: _stats([r.get(m, float("nan")) for r in rs]) for m in metrics}
        entry["by_k"] = by_k
    head = systems.get(f"{spec.headline_teacher} (teacher)", {})
    for entry in systems.values():
        if "speed" not in entry or "speed" not in head:
            continue
        for setting, row in entry["speed"].items():
            base = head["speed"].get(setting, {}).get("throughput_tps")
            if base:
                row["x_teacher"] = row["throughput_tps"] / base
        if entry.get("params") and head.get("params"):
            entry["x_smaller_than_teacher"] = head["params"] / entry["params"]


def compare(systems: dict[str, Any], ks: list[int]) -> dict[str, Any]:
    """Per k: the most accurate distilled student against every baseline and its gold-only twin
    (accuracy difference, single-thread throughput ratio), and the share of its teacher kept."""

    def acc(name: str, k: int) -> float:
        return float(systems[name]["by_k"][str(k)]["accuracy"]["mean"])

    def tps(name: str) -> float | None:
        row = (systems[name].get("speed") or {}).get("threads=1")
        return float(row["throughput_tps"]) if row else None

    out: dict[str, Any] = {}
    students = [n for n, e in systems.items() if e["role"] == "student"]
    others = [n for n, e in systems.items() if e["role"] in ("baseline", "student-gold")]
    for k in ks:
        if not students:
            break
        best = max(students, key=lambda n: acc(n, k))
        vs = {}
        for other in others:
            mine, theirs = tps(best), tps(other)
            vs[other] = {
                "accuracy_diff": acc(best, k) - acc(other, k),
                "throughput_ratio": mine / theirs if mine and theirs else None,
            }
        out[str(k)] = {
            "best_student": best,
            "accuracy": acc(best, k),
            "pct_of_teacher": systems[best]["by_k"][str(k)]["pct_of_teacher"]["mean"],
            "teacher": systems[best].get("teacher"),
            "vs": vs,
        }
    return out


def document(
    spec: BenchSpec,
    quick: bool,
    label_names: list[str],
    ref_split: Split,
    n_transfer: int,
    done: dict[str, Any],
) -> dict[str, Any]:
    """The result document: every unit's rows, the systems, their summary and comparison."""
    rows = [r for u in done.values() for r in u["rows"]]
    systems: dict[str, Any] = {}
    for u in done.values():
        systems.update(u["systems"])
    summarise(spec, rows, systems)
    ref = spec.reference
    return {
        "benchmark": "protocol",
        "protocol": spec.name,
        "quick": quick,
        "spec": spec.model_dump(mode="json"),
        "dataset": {
            "name": spec.data.dataset,
            "label_names": label_names,
            "test_size": len(ref_split.test_texts),
            "transfer_size": n_transfer,
            "pool_size": len(ref_split.pool),
            "majority_class_accuracy": float(
                np.bincount(ref_split.test_labels).max() / len(ref_split.test_labels)
            ),
        },
        "headline_teacher": spec.headline_teacher,
        "reference_run": {"k": ref[0], "seed": ref[1]},
        "systems": systems,
        "comparison": compare(systems, spec.ks),
        "runs": rows,
    }


def _pm(s: dict[str, float] | None, scale: float = 1.0, digits: int = 3) -> str:
    if not s or not s.get("n"):
        return "-"
    return f"{s['mean'] * scale:.{digits}f} ± {s['std'] * scale:.{digits}f}"


def _size(n: float | None) -> str:
    if n is None:
        return "-"
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} GB"


def _params(n: float | None) -> str:
    if not n:
        return "-"
    if n < 1e3:
        return f"{n:.0f}"
    return f"{n / 1e6:.1f}M" if n >= 1e6 else f"{n / 1e3:.0f}K"


def _tps(entry: dict[str, Any], key: str, setting: str) -> str:
    row = (entry.get(key) or {}).get(setting)
    return f"{row['throughput_tps']:,.0f}" if row else "-"


ROLE_ORDER = {"teacher": 0, "student": 1, "student-gold": 2, "baseline": 3}


def protocol_table(doc: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    """Header and rows of the protocol's table (Markdown here, HTML in bench/report_page.py):
    accuracy per k (mean ± std over seeds), then size and speed per system."""
    spec = doc["spec"]
    ks = [str(k) for k in spec["ks"]]
    threads = [f"threads={t or 'all'}" for t in spec["speed"]["threads"]]
    all_label = f"{doc['budget']['torch_threads']} threads"  # what "threads=all" meant
    head = ["system"]
    head += [f"accuracy k={k}" for k in ks] + [f"macro-F1 k={k}" for k in ks]
    head += [f"% of teacher k={k}" for k in ks]
    head += ["params", "size fp32", "size int8", "p50 / p95 ms (1 thread)"]
    head += ["texts/s 1 thread" if t == "threads=1" else f"texts/s {all_label}" for t in threads]
    head += ["int8 texts/s 1 thread", "x teacher (1 thread)"]
    rows = []
    ordered = sorted(doc["systems"].items(), key=lambda kv: ROLE_ORDER.get(kv[1]["role"], 9))
    for name, e in ordered:
        by_k = e.get("by_k", {})
        cells = [name]
        cells += [_pm(by_k.get(k, {}).get("accuracy")) for k in ks]
        cells += [_pm(by_k.get(k, {}).get("macro_f1")) for k in ks]
        cells += [_pm(by_k.get(k, {}).get("pct_of_teacher"), digits=1) for k in ks]
        one = (e.get("speed") or {}).get("threads=1")
        cells += [_params(e.get("params")), _size(e.get("size_bytes")), _size(e.get("int8_bytes"))]
        cells.append(f"{one['p50_ms']:.2f} / {one['p95_ms']:.2f}" if one else "-")
        cells += [_tps(e, "speed", t) for t in threads]
        cells.append(_tps(e, "int8_speed", "threads=1"))
        cells.append(f"{one['x_teacher']:,.0f}x" if one and "x_teacher" in one else "-")
        rows.append(cells)
    return head, rows


def protocol_caption(doc: dict[str, Any]) -> str:
    """What the table measured: data, seeds, test split, how speed was timed (Markdown)."""
    spec = doc["spec"]
    ks = [str(k) for k in spec["ks"]]
    d = doc["dataset"]
    env = doc["environment"]
    ref = doc["reference_run"]
    return (
        f"**{doc['protocol']}** ({d['name']}): k = {', '.join(ks)} labeled examples per class, "
        f"seeds {spec['seeds']}, {d['test_size']:,} fixed test texts (majority class "
        f"{d['majority_class_accuracy']:.3f}), students distilled on {d['transfer_size']:,} "
        f"teacher-labelled texts (gold + pool). Accuracy is mean ± std over seeds; % of teacher "
        f"is against the teacher the student learnt from ({doc['headline_teacher']} for "
        "baselines and gold-only students). Size and CPU speed (tokenisation included; latency "
        f"at batch 1, throughput at batch 256) were measured on the k = {ref['k']}, seed "
        f"{ref['seed']} models in one process on {env['machine']['cpus']} CPUs "
        f"({env['machine']['processor']}); teachers are timed without their embedding cache."
    )


def protocol_summary(doc: dict[str, Any]) -> list[str]:
    """One line per k: the best distilled student against every baseline (Markdown)."""
    summary = []
    for k, c in (doc.get("comparison") or {}).items():
        parts = [
            f"{name} {v['accuracy_diff']:+.3f}"
            + (f" ({v['throughput_ratio']:.2g}x its throughput)" if v["throughput_ratio"] else "")
            for name, v in c["vs"].items()
        ]
        summary.append(
            f"- k = {k}: best student **{c['best_student']}**, {c['accuracy']:.3f} "
            f"({c['pct_of_teacher']:.1f}% of its teacher); vs " + "; ".join(parts) + "."
        )
    return summary


def protocol_footer(doc: dict[str, Any]) -> str:
    env = doc["environment"]
    took = doc["budget"]["seconds"] / 60
    return (
        f"Generated from `bench/results/{doc['protocol']}.json` "
        f"(`{env['command']}`, commit {(env.get('git_commit') or 'unknown')[:8]}, "
        f"{took:.0f} min{', quick mode' if doc['quick'] else ''})."
    )


def render_markdown(doc: dict[str, Any]) -> str:
    """One table: accuracy per k (mean ± std over seeds), then size and speed per system."""
    head, rows = protocol_table(doc)
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(cells) + " |" for cells in rows]
    body = [protocol_caption(doc), "", *lines, ""]
    summary = protocol_summary(doc)
    if summary:
        body += ["Accuracy difference of the best distilled student (1-thread speed ratio):", ""]
        body += [*summary, ""]
    return "\n".join([*body, protocol_footer(doc)]) + "\n"
