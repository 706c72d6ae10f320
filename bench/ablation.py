"""Accuracy levers one at a time on top of the demo's recipe, every row a pipeline run.

Each unit (dataset, k, seed, student, lever) is a `tinystudent run` of the base recipe with one
patch written in, in its own run directory under `--runs`. The units of one (dataset, k, seed)
share the data split and the fine-tuned teacher (copied from the first unit, so the stage
hashes match and the pipeline skips them) and one soft-label cache, so the teacher labels each
text once whatever the levers. An interrupted bench resumes: finished runs are skipped by the
pipeline itself. Every run pins 1 torch thread, so the figures do not depend on the machine.

    python bench/ablation.py [--datasets rt bbc] [--k 8 64] [--seeds 0 1 2]
                             [--students bag pqrnn] [--levers base augment-x2 ...] [--quick]

Writes bench/results/ablation.json (per unit: accuracy, macro-F1, % of teacher, agreement with
the teacher, both calibration errors, transfer size, training seconds) and a plot. Budget on a
quiet 2-core machine: about 1.5 min per teacher (fine-tune + labels), 0.5-1 min per bag unit
and 3-5 min per pQRNN unit on Rotten Tomatoes, plus the labelling of augmented text.
"""

from __future__ import annotations

import argparse
import copy
import shutil
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import RESULTS, environment, mean_std  # noqa: E402

from tinystudent.io import read_json, write_json  # noqa: E402
from tinystudent.pipeline import run  # noqa: E402
from tinystudent.recipe import Recipe, default_recipe  # noqa: E402

DATASETS: dict[str, dict[str, Any]] = {
    "rt": {"data": {"dataset": "rotten_tomatoes", "test_size": 2000}},
    "bbc": {
        "data": {"dataset": "bbc_news", "test_size": 0.2},
        "teacher": {"max_length": 256, "epochs": 15, "batch_size": 8, "predict_batch_size": 16},
    },
    # A third set, not tuned on: 3 classes, the rarest (neutral) with 90 texts in all, so k <= 32.
    "dr": {"data": {"dataset": "drug_reviews", "test_size": 0.3}, "teacher": {"max_length": 128}},
}
STUDENTS: dict[str, dict[str, dict[str, Any]]] = {
    "bag": {"rt": {"kind": "bag"}, "bbc": {"kind": "bag"}, "dr": {"kind": "bag"}},
    "pqrnn": {
        "rt": {"kind": "pqrnn"},
        "bbc": {"kind": "pqrnn", "max_tokens": 256},
        "dr": {"kind": "pqrnn", "max_tokens": 128},
    },
}
#: A `teachers` member {SEED_OFFSET: i}: the dataset's own teacher with training seed data.seed + i.
SEED_OFFSET = "seed_offset"
KD, CE = {"kind": "kd", "temperature": 2.0, "weight": 0.9}, {"kind": "ce", "weight": 0.1}
AUGMENT = {"enabled": True, "num_examples": 0, "augment": ["mask", "swap", "ngram"]}
# One lever per row, each a patch on top of the base recipe (deep-merged; lists replace).
LEVERS: dict[str, dict[str, Any]] = {
    "base": {},
    "augment-x1": {"generate": {**AUGMENT, "augment_per_text": 1}},
    "augment-x2": {"generate": {**AUGMENT, "augment_per_text": 2}},
    "kd-T1": {"train": {"objectives": [{**KD, "temperature": 1.0}, CE]}},
    "kd-T4": {"train": {"objectives": [{**KD, "temperature": 4.0}, CE]}},
    "rdrop": {"train": {"objectives": [KD, CE, {"kind": "rdrop", "weight": 1.0}]}},
    "embedding": {"train": {"objectives": [KD, CE, {"kind": "embedding", "weight": 1.0}]}},
    "epochs-16": {"train": {"epochs": 16, "patience": 4}},
    "augment-x4": {"generate": {**AUGMENT, "augment_per_text": 4}},
    "vocab-30k": {"student": {"vocab_size": 30_000}},
    # Long texts (BBC articles run to hundreds of words): read up to 512 tokens.
    "tokens-512": {"student": {"max_tokens": 512}},
    # Where words decide: a TF-IDF + LR teacher instead of the fine-tuned encoder (lever 6).
    "teacher-tfidf": {"teacher": {"kind": "tfidf", "temperature": "auto"}},
    # Two levers together, once each has been measured alone.
    # A frozen encoder and TF-IDF amalgamated: two cheap teachers that err differently.
    "frozen+tfidf": {
        "teachers": [
            {"kind": "frozen", "model": "minilm-l6", "max_length": 256, "temperature": "auto"},
            {"kind": "tfidf", "temperature": "auto"},
        ],
        "amalgamation": {"method": "average"},
    },
    "tfidf+tokens-512": {
        "teacher": {"kind": "tfidf", "temperature": "auto"},
        "student": {"max_tokens": 512},
    },
    "tfidf+augment-x4": {
        "teacher": {"kind": "tfidf", "temperature": "auto"},
        "generate": {**AUGMENT, "augment_per_text": 4},
    },
    # Lever 5 (teacher signal): the base teacher fine-tuned with 3 training seeds on the same
    # k-shot set, averaged. One fine-tune is a draw (refit with another seed, it changes its
    # mind on 10-18% of RT's test texts: bench/teacher_agreement.py); the mean is steadier.
    "teacher-seeds-3": {
        "teachers": [{SEED_OFFSET: 0}, {SEED_OFFSET: 1}, {SEED_OFFSET: 2}],
        "amalgamation": {"method": "average"},
    },
    "rdrop+epochs-16": {
        "train": {
            "epochs": 16,
            "patience": 4,
            "objectives": [KD, CE, {"kind": "rdrop", "weight": 1.0}],
        }
    },
}


def _new_teacher(lever: str) -> bool:
    """Does the lever replace the base recipe's teacher (so nothing of it can be reused)?"""
    return bool({"teacher", "teachers"} & set(LEVERS.get(lever, {})))


def _seeded_members(patch: dict[str, Any], teacher: dict[str, Any], seed: int) -> dict[str, Any]:
    """`patch` with each {SEED_OFFSET: i} member of its `teachers` made the dataset's own
    `teacher` section trained with seed `seed + i` (a seed ensemble of the base teacher)."""
    members = patch.get("teachers")
    if not members or not any(SEED_OFFSET in m for m in members):
        return patch
    seeded = [
        {**teacher, "seed": seed + m[SEED_OFFSET]} if SEED_OFFSET in m else m for m in members
    ]
    return {**patch, "teachers": seeded}


def merge(base: dict[str, Any], patch: dict[str, Any]) -> dict[str, Any]:
    """`patch` written into a copy of `base`, section by section (a list replaces a list)."""
    out = copy.deepcopy(base)
    for key, value in patch.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def unit_recipe(
    dataset: str, k: int, seed: int, student: str, lever: str, cache: Path, quick: bool
) -> Recipe:
    """The base recipe (the demo's) on `dataset` with `k`, `seed`, the student and one lever."""
    base = default_recipe().model_dump(mode="json", exclude_defaults=True)
    base = merge(base, DATASETS[dataset])
    base = merge(base, {"data": {"k": k, "seed": seed}, "label": {"cache_dir": str(cache)}})
    base["student"] = dict(STUDENTS[student][dataset])
    base["threads"] = 1
    if quick:  # a smoke test: a few hundred pool texts, one epoch each
        base = merge(base, {"data": {"max_pool": 300, "test_size": 200}, "teacher": {"epochs": 1}})
        base = merge(base, {"train": {"epochs": 1}})
    patch = LEVERS[lever]
    if _new_teacher(lever):  # another teacher: its section replaces the dataset's
        own = base.pop("teacher", {})
        patch = _seeded_members(patch, own, seed)
    base = merge(base, patch)
    base["name"] = f"{dataset}-k{k}-s{seed}-{student}-{lever}"
    return Recipe(**base)


def seed_from(first: Path, out: Path, same_teacher: bool = True) -> None:
    """Start `out` with `first`'s split and, unless the lever changes it, its teacher (same
    data and teacher sections, so the pipeline's stage hashes match and it skips both)."""
    if out.exists() or not (first / "teacher" / "teacher.json").exists():
        return
    stages = read_json(first / "stages.json")
    out.mkdir(parents=True)
    parts = ("data", "teacher") if same_teacher else ("data",)
    for part in parts:
        shutil.copytree(first / part, out / part)
    write_json(out / "stages.json", {s: stages[s] for s in parts})


def row(report: dict[str, Any]) -> dict[str, Any]:
    s, t = report["student"], report["teacher"]
    return {
        "teacher_accuracy": t["accuracy"],
        "accuracy": s["accuracy"],
        "macro_f1": s["macro_f1"],
        "pct_of_teacher": s["pct_of_teacher"],
        "agreement": s.get("agreement_with_teacher"),
        "ece": s.get("ece"),
        "teacher_ece": t.get("ece"),
        "transfer_size": report["transfer_size"],
        "transfer_sources": report["transfer_sources"],
        "train_seconds": report["training"].get("seconds"),
        "best_epoch": report["training"].get("best_epoch"),
    }


def summarise(units: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Mean ± std over seeds per (dataset, k, student, lever), in the order first seen."""
    groups: dict[tuple[str, int, str, str], list[dict[str, Any]]] = {}
    for u in units:
        groups.setdefault((u["dataset"], u["k"], u["student"], u["lever"]), []).append(u)
    out = []
    for (dataset, k, student, lever), rows in groups.items():
        entry: dict[str, Any] = {"dataset": dataset, "k": k, "student": student, "lever": lever}
        entry["seeds"] = [r["seed"] for r in rows]
        for key in ("accuracy", "pct_of_teacher", "agreement", "ece", "teacher_ece"):
            values = [r[key] for r in rows if r.get(key) is not None]
            if values:
                entry[key] = mean_std(values)
        entry["transfer_size"] = rows[0]["transfer_size"]
        out.append(entry)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--datasets", nargs="+", default=list(DATASETS), choices=list(DATASETS))
    ap.add_argument("--k", nargs="+", type=int, default=[8, 64])
    ap.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    ap.add_argument("--students", nargs="+", default=list(STUDENTS), choices=list(STUDENTS))
    ap.add_argument("--levers", nargs="+", default=list(LEVERS), choices=list(LEVERS))
    ap.add_argument("--runs", default="runs/ablation", help="run directories (resumable)")
    ap.add_argument("--quick", action="store_true", help="tiny budgets, for a smoke test")
    ap.add_argument("--out", default=str(RESULTS / "ablation.json"))
    ap.add_argument(
        "--merge",
        nargs="+",
        metavar="JSON",
        help="add the units of these result files (other invocations, other machines) to "
        "--out, runs nothing",
    )
    args = ap.parse_args(argv)
    if args.merge:
        return merge_results(Path(args.out), [Path(p) for p in args.merge])
    levers = args.levers if "base" in args.levers else ["base", *args.levers]

    runs = Path(args.runs)
    # Rows of earlier invocations into the same file stay (other students, levers, datasets);
    # a unit run again replaces its row.
    units: list[dict[str, Any]] = earlier_units(Path(args.out), args.quick)
    earlier = read_json(Path(args.out)).get("command", "") if units else ""
    mine = _command(sys.argv[1:])
    args.earlier_commands = [c for c in earlier.split("; ") if c and c != mine]
    start = time.perf_counter()
    for dataset in args.datasets:
        for k in args.k:
            for seed in args.seeds:
                cache = runs / f"{dataset}-k{k}-s{seed}" / "cache"
                # A unit finished by an earlier invocation (other students or levers) lends
                # its split and teacher too.
                done = [
                    d
                    for d in sorted((runs / f"{dataset}-k{k}-s{seed}").glob("*/report.json"))
                    if not _new_teacher(d.parent.name.split("-", 1)[1])
                ]
                first: Path | None = done[0].parent if done else None
                for student in args.students:
                    for lever in levers:
                        recipe = unit_recipe(dataset, k, seed, student, lever, cache, args.quick)
                        out = runs / f"{dataset}-k{k}-s{seed}" / f"{student}-{lever}"
                        if first is not None:
                            seed_from(first, out, not _new_teacher(lever))
                        t0 = time.perf_counter()
                        report = run(recipe, out)
                        if not _new_teacher(lever):
                            first = first or out
                        unit = {"dataset": dataset, "k": k, "seed": seed}
                        unit = {**unit, "student": student, "lever": lever}
                        units = [u for u in units if _key(u) != _key(unit)]
                        units.append({**unit, **row(report)})
                        print(
                            f"[ablation] {recipe.name}: {report['student']['accuracy']:.3f} "
                            f"({report['student']['pct_of_teacher']:.1f}% of "
                            f"{report['teacher']['accuracy']:.3f}) "
                            f"in {time.perf_counter() - t0:.0f} s",
                            flush=True,
                        )
                        write_json(Path(args.out), _result(args, units, start))
    write_json(Path(args.out), _result(args, units, start))
    _plot(summarise(units), Path(args.out).with_suffix(".png"))
    return 0


def _key(unit: dict[str, Any]) -> tuple[Any, ...]:
    return tuple(unit[k] for k in ("dataset", "k", "seed", "student", "lever"))


def earlier_units(path: Path, quick: bool) -> list[dict[str, Any]]:
    """The units already in `path` when it holds results of the same mode (quick or not)."""
    if not path.exists():
        return []
    doc = read_json(path)
    return list(doc["units"]) if doc.get("quick") == quick else []


def _command(argv: list[str]) -> str:
    """This invocation as the table cites it (where its run directories and file went is
    left out: it does not change a figure)."""
    out, skip = [], False
    for a in argv:
        if skip:
            skip = False
        elif a in ("--runs", "--out"):
            skip = True
        elif not a.startswith(("--runs=", "--out=")):
            out.append(a)
    return " ".join(["python bench/ablation.py", *out])


def merge_results(out: Path, sources: list[Path]) -> int:
    """`out` with every unit of `sources` added (a unit in both keeps the source's row); the
    commands that produced them are kept, joined by '; '."""
    doc = read_json(out) if out.exists() else {"units": [], "command": "", "levers": {}}
    units: list[dict[str, Any]] = list(doc["units"])
    commands = [c for c in doc.get("command", "").split("; ") if c]
    levers = dict(doc.get("levers", {}))
    for src in sources:
        other = read_json(src)
        if other.get("quick"):
            raise SystemExit(f"{src}: quick (smoke-test) results are not merged")
        keys = {_key(u) for u in other["units"]}
        units = [u for u in units if _key(u) not in keys] + list(other["units"])
        commands += [c for c in other.get("command", "").split("; ") if c and c not in commands]
        levers.update(other.get("levers", {}))
    doc.update(units=units, summary=summarise(units), command="; ".join(commands), levers=levers)
    write_json(out, doc)
    _plot(doc["summary"], out.with_suffix(".png"))
    print(f"[ablation] {out}: {len(units)} units from {len(sources) + 1} files")
    return 0


def _result(args: argparse.Namespace, units: list[dict[str, Any]], start: float) -> dict:
    return {
        "benchmark": "ablation",
        "quick": args.quick,
        "command": "; ".join([*args.earlier_commands, _command(sys.argv[1:])]),
        "levers": {name: LEVERS[name] for name in dict.fromkeys(u["lever"] for u in units)},
        "summary": summarise(units),
        "units": units,
        "seconds": time.perf_counter() - start,
        "environment": environment(),
    }


def _plot(summary: list[dict[str, Any]], path: Path) -> None:
    """Accuracy kept (% of teacher) per lever, one bar group per (dataset, k, student); a
    group shows only the levers measured on it, each lever one colour throughout."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    groups = list(dict.fromkeys((s["dataset"], s["k"], s["student"]) for s in summary))
    levers = list(dict.fromkeys(s["lever"] for s in summary))
    colours = plt.get_cmap("tab20")
    fig, ax = plt.subplots(figsize=(min(14, 2 + 1.6 * len(groups)), 4.5))
    ticks, seen = [], set()
    for i, g in enumerate(groups):
        hits = [
            s
            for lever in levers
            for s in summary
            if (s["dataset"], s["k"], s["student"]) == g and s["lever"] == lever
        ]
        width = 0.8 / max(1, len(hits))
        for j, hit in enumerate(hits):
            label = hit["lever"] if hit["lever"] not in seen else None
            seen.add(hit["lever"])
            ax.bar(
                i + j * width,
                hit["pct_of_teacher"]["mean"],
                width,
                yerr=hit["pct_of_teacher"]["std"],
                color=colours(levers.index(hit["lever"]) % 20),
                label=label,
                align="edge",
            )
        ticks.append(i + 0.4)
    ax.set_xticks(ticks)
    ax.set_xticklabels([f"{d} k={k}\n{s}" for d, k, s in groups])
    ax.set_ylabel("% of teacher accuracy")
    ax.axhline(100, color="grey", lw=0.8)
    low = min((s["pct_of_teacher"]["mean"] for s in summary), default=80)
    ax.set_ylim(max(0, low - 5), 106)
    ax.legend(fontsize=7, ncol=2, loc="center left", bbox_to_anchor=(1.0, 0.5))
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    sys.exit(main())
