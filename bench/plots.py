"""Plots of a protocol result, drawn from the JSON alone (figures are never typed by hand).

    python bench/plots.py bench/results/rt.json [more.json ...]

`<name>-pareto.png`: accuracy against single-thread throughput (log x), one panel per k, the
Pareto front drawn through the systems no other system beats on both axes.
`<name>-accuracy-vs-k.png`: accuracy (mean ± std over seeds) against k for every system.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any, BinaryIO

ROLE_STYLE: dict[str, dict[str, Any]] = {
    "teacher": {"color": "#c0392b", "marker": "*", "label": "teacher"},
    "student": {"color": "#1f5fa8", "marker": "o", "label": "distilled student"},
    "student-gold": {"color": "#8fb3d9", "marker": "o", "label": "same student, gold labels only"},
    "baseline": {"color": "#3a8d3a", "marker": "s", "label": "baseline (gold labels only)"},
}


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")  # files only: no display on a server
    import matplotlib.pyplot as plt

    return plt


def pareto_front(points: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """Points not beaten on both throughput and accuracy, fastest first."""
    front: list[tuple[float, float]] = []
    best = float("-inf")
    for x, y in sorted(points, key=lambda p: (-p[0], -p[1])):
        if y > best:
            front.append((x, y))
            best = y
    return front


def pareto_plot(
    doc: dict[str, Any], path: Path | BinaryIO, setting: str = "threads=1"
) -> Path | BinaryIO:
    """The plot as a PNG file, or into a binary file object (the HTML page inlines it)."""
    plt = _pyplot()
    ks = [str(k) for k in doc["spec"]["ks"]]
    fig, axes = plt.subplots(1, len(ks), figsize=(6.5 * len(ks), 5), sharey=True, squeeze=False)
    seen_roles: set[str] = set()
    for ax, k in zip(axes[0], ks):
        points = []
        for name, e in doc["systems"].items():
            speed = (e.get("speed") or {}).get(setting)
            acc = e.get("by_k", {}).get(k, {}).get("accuracy")
            if not speed or not acc or not acc.get("n"):
                continue
            style = ROLE_STYLE.get(e["role"], ROLE_STYLE["baseline"])
            x, y = speed["throughput_tps"], acc["mean"]
            label = style["label"] if e["role"] not in seen_roles else None
            seen_roles.add(e["role"])
            ax.errorbar(
                x,
                y,
                yerr=acc["std"],
                fmt=style["marker"],
                color=style["color"],
                markersize=11 if e["role"] == "teacher" else 7,
                capsize=3,
                label=label,
            )
            ax.annotate(name, (x, y), textcoords="offset points", xytext=(5, 5), fontsize=7)
            points.append((x, y))
        front = pareto_front(points)
        if len(front) > 1:
            fx, fy = zip(*sorted(front))
            ax.step(fx, fy, where="post", color="grey", lw=1, ls="--", label="Pareto front")
        majority = doc["dataset"].get("majority_class_accuracy")
        if majority:
            ax.axhline(majority, color="black", lw=0.8, ls=":", label="majority class")
        ax.set_xscale("log")
        ax.set_xlabel(f"texts/s at batch 256, {setting.replace('threads=', 'threads: ')} (log)")
        ax.set_title(f"k = {k} per class")
        ax.grid(alpha=0.3, which="both")
    axes[0][0].set_ylabel("test accuracy (mean ± std over seeds)")
    axes[0][-1].legend(fontsize=8, loc="lower left")
    fig.suptitle(f"{doc['protocol']} ({doc['dataset']['name']}): accuracy vs CPU throughput")
    fig.tight_layout()
    fig.savefig(path, dpi=120, format="png")
    plt.close(fig)
    return path


def accuracy_vs_k_plot(doc: dict[str, Any], path: Path) -> Path:
    plt = _pyplot()
    ks = doc["spec"]["ks"]
    fig, ax = plt.subplots(figsize=(7.5, 5))
    for name, e in doc["systems"].items():
        stats = [e.get("by_k", {}).get(str(k), {}).get("accuracy") for k in ks]
        if not all(s and s.get("n") for s in stats):
            continue
        style = ROLE_STYLE.get(e["role"], ROLE_STYLE["baseline"])
        ls = "-" if e["role"] in ("teacher", "student") else "--"
        ax.errorbar(
            ks,
            [s["mean"] for s in stats],  # type: ignore[index]
            yerr=[s["std"] for s in stats],  # type: ignore[index]
            marker=style["marker"],
            ls=ls,
            capsize=3,
            label=name,
        )
    majority = doc["dataset"].get("majority_class_accuracy")
    if majority:
        ax.axhline(majority, color="black", lw=0.8, ls=":", label="majority class")
    ax.set_xscale("log", base=2)
    ax.set_xticks(ks)
    ax.set_xticklabels([str(k) for k in ks])
    ax.set_xlabel("k labeled examples per class")
    ax.set_ylabel("test accuracy (mean ± std over seeds)")
    ax.set_title(f"{doc['protocol']} ({doc['dataset']['name']}): accuracy vs k")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.0, 0.5))
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def make_plots(doc: dict[str, Any], out_dir: Path) -> list[Path]:
    """Both plots of one result document; returns the files written."""
    out_dir.mkdir(parents=True, exist_ok=True)
    name = doc["protocol"]
    return [
        pareto_plot(doc, out_dir / f"{name}-pareto.png"),
        accuracy_vs_k_plot(doc, out_dir / f"{name}-accuracy-vs-k.png"),
    ]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("results", nargs="+", help="bench/results/<protocol>.json files")
    args = ap.parse_args(argv)
    for path in map(Path, args.results):
        for png in make_plots(json.loads(path.read_text()), path.parent):
            print(f"wrote {png}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
