"""Which teacher should a tiny student learn from: an encoder, an LLM, or several amalgamated?

Rotten Tomatoes, k = 8 and 64 gold examples per class, seeds 0, 1, 2, on one fixed test split.
Teachers, side by side on the same split:
- `encoder`: frozen MiniLM-L6 + logistic regression fit on the k gold examples;
- `llm raw`: SmolLM2-135M-Instruct prompted zero-shot (or `--shots` per class), no calibration;
- `llm contextual`: the same scores, contextual calibration (content-free inputs);
- `llm temperature`: the same scores, temperature + bias fitted on the k gold examples;
- `amalg <method>`: encoder + `llm <--amalgamate-llm>` amalgamated by average, gold accuracy,
  and per-example MC-dropout certainty (encoder: 8 feature-dropout passes; SmolLM2 has no
  dropout, so it is judged by the entropy of its own prediction, see amalgamate.py).
Each teacher labels the transfer set (the gold examples + a capped unlabeled pool) and a `bag`
student (trains in seconds) is distilled from it; `gold only` is the same student on the gold
labels alone. Accuracy and macro-F1, mean ± std over seeds, go to bench/results/teachers.json,
with teacher-to-teacher agreement on the test split, the machine and the command.

Cost is the LLM: ~80-100 ms a text on one thread. Its raw scores are cached on disk under
`--cache` (keyed by model, prompt and text), so zero-shot scores are computed once and shared by
every k, seed and calibration, and a rerun is cheap; finished (k, seed) units are kept in
`<cache>/units.json` and skipped on a rerun.

    python bench/teachers.py --quick   # smoke test: ~2-3 minutes
    python bench/teachers.py           # the protocol: see the README section for its cost
"""

from __future__ import annotations

import argparse
import hashlib
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import RESULTS, ROOT, environment, mean_std  # noqa: E402

from tinystudent.data import Split, load_dataset, make_split  # noqa: E402
from tinystudent.evaluate import classification_metrics  # noqa: E402
from tinystudent.io import read_json, write_json  # noqa: E402
from tinystudent.seed import seed_everything  # noqa: E402
from tinystudent.students import build_student  # noqa: E402
from tinystudent.teachers.amalgamate import (  # noqa: E402
    METHODS,
    AmalgamatedTeacher,
    AmalgamationSpec,
    agreement_matrix,
)
from tinystudent.teachers.frozen import FrozenEncoderTeacher, FrozenTeacherConfig  # noqa: E402
from tinystudent.teachers.llm import LLMTeacher, LLMTeacherConfig, TransformersScorer  # noqa: E402
from tinystudent.train import TrainConfig, train_student  # noqa: E402

QUICK = {"max_pool": 150, "test": 100, "epochs": 2}
CALIBRATIONS = {"llm raw": "none", "llm contextual": "contextual", "llm temperature": "temperature"}
PROMPT = {
    "instruction": "Is each movie review positive or negative?",
    "template": "Review: {text}\nSentiment:",
    "verbalizers": {"fresh": "positive", "rotten": "negative"},
}


def by_hash(texts: list[str], n: int | None) -> list[str]:
    """A fixed pseudo-random subset (sorted by text hash): the same texts for every seed, and
    not the file's order (which is grouped by class)."""
    ordered = sorted(texts, key=lambda t: hashlib.sha1(t.encode()).hexdigest())
    return ordered if n is None else ordered[:n]


def cap_split(split: Split, max_pool: int | None, n_test: int | None) -> Split:
    split.pool = by_hash(split.pool, max_pool)
    keep = set(by_hash(split.test_texts, n_test))
    pairs = [(t, y) for t, y in zip(split.test_texts, split.test_labels) if t in keep]
    split.test_texts, split.test_labels = [t for t, _ in pairs], [y for _, y in pairs]
    return split


def student_on(
    split: Split, texts: list[str], probs: np.ndarray, labels: list[int], seed: int, epochs: int
) -> dict[str, float]:
    seed_everything(seed)
    student = build_student("bag", {}, split.label_names)
    t0 = time.perf_counter()
    train_student(student, texts, probs, labels, TrainConfig(seed=seed, epochs=epochs))
    m = classification_metrics(split.test_labels, student.predict_proba(split.test_texts))
    m["train_seconds"] = time.perf_counter() - t0
    return m


def run_unit(
    args: argparse.Namespace,
    split: Split,
    encoder: FrozenEncoderTeacher,
    scorer: TransformersScorer,
    seed: int,
    epochs: int,
) -> dict[str, Any]:
    """Every teacher and its student on one (k, seed) split."""
    gold = set(split.train_texts)
    pool = [t for t in split.pool if t not in gold]
    transfer = split.train_texts + pool
    labels = split.train_labels + [-1] * len(pool)
    timings: dict[str, float] = {}

    t0 = time.perf_counter()
    encoder.fit(split.train_texts, split.train_labels, seed)
    teachers: dict[str, Any] = {"encoder": encoder}
    timings["encoder"] = time.perf_counter() - t0
    cache = Path(args.cache) / "llm-scores"
    for name, calibration in CALIBRATIONS.items():
        t0 = time.perf_counter()
        cfg = LLMTeacherConfig(
            model=args.llm,
            shots=args.shots,
            calibration=calibration,
            **PROMPT,  # type: ignore[arg-type]
        )
        llm = LLMTeacher(scorer, split.label_names, cfg, cache)
        llm.fit(split.train_texts, split.train_labels, seed)
        llm.predict_proba(transfer + split.test_texts)  # fills the score cache once
        teachers[name] = llm
        timings[name] = time.perf_counter() - t0
    members = [encoder, teachers[args.amalgamate_llm]]
    for method in METHODS:
        spec = AmalgamationSpec(method=method, mc_samples=args.mc_samples, seed=seed)  # type: ignore[arg-type]
        amalg = AmalgamatedTeacher(members, spec, ["encoder", args.amalgamate_llm])
        amalg.fit(split.train_texts, split.train_labels)
        teachers[f"amalg {method}"] = amalg

    systems: dict[str, Any] = {}
    preds: dict[str, np.ndarray] = {}
    for name, teacher in teachers.items():
        t0 = time.perf_counter()
        test_probs = teacher.predict_proba(split.test_texts)
        probs = teacher.predict_proba(transfer)
        label_seconds = time.perf_counter() - t0
        preds[name] = test_probs.argmax(1)
        entry = {
            "teacher": classification_metrics(split.test_labels, test_probs),
            "student": student_on(split, transfer, probs, labels, seed, epochs),
            "label_seconds": label_seconds + timings.get(name, 0.0),
        }
        if isinstance(teacher, AmalgamatedTeacher):
            entry["fit"] = teacher.fit_info
        if isinstance(teacher, LLMTeacher):
            entry["fit"] = teacher.fit_info
        systems[name] = entry
    n_cls = len(split.label_names)
    gold_probs = np.eye(n_cls, dtype=np.float32)[split.train_labels]
    systems["gold only"] = {
        "student": student_on(
            split, split.train_texts, gold_probs, split.train_labels, seed, 30 if epochs > 2 else 2
        )
    }
    return {
        "systems": systems,
        "agreement": agreement_matrix(preds),
        "transfer_size": len(transfer),
        "test_size": len(split.test_texts),
    }


def summarise(units: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Per k and system: teacher and student accuracy / macro-F1 as mean ± std over seeds."""
    out: dict[str, Any] = {}
    groups: dict[tuple[int, str, str, str], list[float]] = {}
    agree: dict[tuple[int, str, str], list[float]] = {}
    for u in units.values():
        for system, e in u["systems"].items():
            for role in ("teacher", "student"):
                for metric in ("accuracy", "macro_f1"):
                    if role in e:
                        groups.setdefault((u["k"], system, role, metric), []).append(
                            e[role][metric]
                        )
        for a, row in u["agreement"].items():
            for b, v in row.items():
                agree.setdefault((u["k"], a, b), []).append(v)
    for (k, system, role, metric), vals in groups.items():
        out.setdefault(f"k={k}", {}).setdefault(system, {}).setdefault(role, {})[metric] = mean_std(
            vals
        )
    for (k, a, b), vals in agree.items():
        out[f"k={k}"].setdefault("_agreement", {}).setdefault(a, {})[b] = statistics.fmean(vals)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ks", nargs="+", type=int, default=[8, 64])
    ap.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    ap.add_argument("--encoder", default="minilm-l6", help="frozen encoder teacher")
    ap.add_argument("--llm", default="smollm2-135m", help="causal LM: smollm2-135m or a folder")
    ap.add_argument("--shots", type=int, default=0, help="in-context examples per class")
    ap.add_argument(
        "--amalgamate-llm", default="llm temperature", choices=list(CALIBRATIONS), help="member"
    )
    ap.add_argument("--mc-samples", type=int, default=8)
    ap.add_argument("--max-pool", type=int, default=2000, help="unlabeled pool texts per split")
    ap.add_argument("--test", type=int, default=1000, help="test texts (of the fixed 2000)")
    ap.add_argument("--epochs", type=int, default=TrainConfig().epochs, help="student epochs")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--cache", default=str(ROOT / "runs" / "bench-teachers-cache"))
    ap.add_argument("--quick", action="store_true", help="smoke test: tiny sizes, k=8, seed 0")
    ap.add_argument("--out", default=None, help="default bench/results/teachers[-quick].json")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    quick = args.quick
    if quick:
        args.ks, args.seeds = args.ks[:1], args.seeds[:1]
        args.max_pool, args.test, args.epochs = QUICK["max_pool"], QUICK["test"], QUICK["epochs"]
    start = time.perf_counter()
    ds = load_dataset("rotten_tomatoes")
    cache = Path(args.cache)
    encoder = FrozenEncoderTeacher.from_config(
        list(ds.label_names), FrozenTeacherConfig(model=args.encoder), cache / "embeddings"
    )
    scorer = TransformersScorer.from_pretrained(args.llm, batch_size=16)
    settings = {
        "max_pool": args.max_pool,
        "test": args.test,
        "epochs": args.epochs,
        "shots": args.shots,
        "mc_samples": args.mc_samples,
        "encoder": args.encoder,
        "llm": args.llm,
        "amalgamate_llm": args.amalgamate_llm,
        "prompt": PROMPT,
    }
    units_path = cache / f"units{'-quick' if quick else ''}.json"
    saved = read_json(units_path) if units_path.exists() else {}
    units = saved.get("units", {}) if saved.get("settings") == settings else {}
    for k in args.ks:
        for seed in args.seeds:
            key = f"k={k} seed={seed}"
            if key in units:
                print(f"[{key}] done before, skipped", flush=True)
                continue
            t0 = time.perf_counter()
            split = cap_split(make_split(ds, k, seed, 2000, split_seed=0), args.max_pool, args.test)
            unit = run_unit(args, split, encoder, scorer, seed, args.epochs)
            unit.update(k=k, seed=seed, seconds=time.perf_counter() - t0)
            units[key] = unit
            write_json(units_path, {"settings": settings, "units": units})
            accs = {
                s: (
                    round(e.get("teacher", {}).get("accuracy", float("nan")), 3),
                    round(e["student"]["accuracy"], 3),
                )
                for s, e in unit["systems"].items()
            }
            print(f"[{key}] {unit['seconds']:.0f}s (teacher, student) accuracy {accs}", flush=True)

    doc = {
        "benchmark": "teachers",
        "dataset": "rotten_tomatoes",
        "quick": quick,
        "student": "bag",
        "settings": settings,
        "ks": args.ks,
        "seeds": args.seeds,
        "summary": summarise(
            {k: u for k, u in units.items() if u["k"] in args.ks and u["seed"] in args.seeds}
        ),
        "units": units,
        "seconds": time.perf_counter() - start,
        "environment": environment(),
    }
    out = Path(args.out) if args.out else RESULTS / f"teachers{'-quick' if quick else ''}.json"
    write_json(out, doc)
    print(f"wrote {out} in {doc['seconds'] / 60:.1f} min")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
