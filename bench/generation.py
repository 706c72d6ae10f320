"""Does generation grow the transfer set usefully? Students with and without generated text.

For each dataset (Rotten Tomatoes, BBC News), k (8, 64) and seed (0, 1, 2), one frozen
teacher (encoder + logistic regression fit on the k gold examples) labels the transfer set,
and the same student is trained five ways side by side on the same split:
- teacher: the teacher itself, for reference;
- gold only: the student on the k gold labels (no distillation);
- pool: gold + the teacher-labelled unlabeled pool (what the pipeline does without `generate`);
- pool+generated: gold + pool + LM-generated texts, all teacher-labelled;
- generated only: gold + generated texts (is the generator a substitute for a pool?).
Accuracy and macro-F1 go to bench/results/generation.json as mean ± std over seeds, with the
generation settings, counts, drop reasons and speed, the machine and the command.

Generating is the expensive step on a CPU (SmolLM2-135M: roughly a text per second or two on
2 threads), so it happens once per dataset on a reference split (largest k, seed 0) and the
kept texts are shared by every (k, seed); the leak guard uses the fixed test split, which is
the same for all of them. Generated texts live in resumable shards under `--cache`, so an
interrupted run continues where it stopped, and `--gen-minutes` bounds the time spent.

    python bench/generation.py --quick                 # smoke test: minutes, tiny sizes
    python bench/generation.py --datasets rt --ks 64   # part of the protocol
    python bench/generation.py                         # everything (hours on 2 CPU cores)
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import RESULTS, ROOT, environment, mean_std  # noqa: E402

from tinystudent.data import Split, load_dataset, make_split  # noqa: E402
from tinystudent.evaluate import classification_metrics  # noqa: E402
from tinystudent.generate import GenerationConfig, build_transfer_set  # noqa: E402
from tinystudent.io import write_json  # noqa: E402
from tinystudent.seed import seed_everything  # noqa: E402
from tinystudent.students import build_student  # noqa: E402
from tinystudent.teachers.frozen import FrozenEncoderTeacher, FrozenTeacherConfig  # noqa: E402
from tinystudent.train import TrainConfig, train_student  # noqa: E402

DATASETS: dict[str, dict[str, Any]] = {
    "rt": {
        "name": "rotten_tomatoes",
        "test_size": 2000,
        "domain": "movie review snippets",
        "item": "review snippet",
    },
    "bbc": {"name": "bbc_news", "test_size": 0.2, "domain": "news articles", "item": "article"},
}
CONDITIONS = ["gold only", "pool", "pool+generated", "generated only"]
QUICK = {"max_pool": 300, "test": 200, "num_generated": 16, "finetune_steps": 3, "epochs": 1}


def gold_train(seed: int, quick: bool) -> TrainConfig:
    # As in tinystudent.bench: few texts, nothing to hold out, CE only.
    epochs = 2 if quick else 30
    return TrainConfig(
        epochs=epochs, batch_size=16, alpha=0.0, val_fraction=0.0, patience=30, seed=seed
    )


def generate_once(
    args: argparse.Namespace, key: str, split: Split, quick: bool
) -> tuple[list[str], dict[str, Any]]:
    """Generated texts for a dataset (resumable shards under --cache) and the run summary."""
    d = DATASETS[key]
    cfg = GenerationConfig(
        enabled=True,
        strategy=args.strategy,
        num_examples=QUICK["num_generated"] if quick else args.num_generated,
        time_limit_s=args.gen_minutes * 60,
        max_new_tokens=32 if quick else args.max_new_tokens,
        finetune_steps=QUICK["finetune_steps"] if quick else args.finetune_steps,
        domain=d["domain"],
        item=d["item"],
        threads=args.gen_threads,
        seed=0,
    )
    out = Path(args.cache) / "generation" / f"{key}-{args.strategy}{'-quick' if quick else ''}"
    pairs = build_transfer_set(split, cfg, out)
    generated = [t for t, s in pairs if s == "generated"]
    summary = json.loads((out / "summary.json").read_text(encoding="utf-8"))
    return generated, {"config": cfg.model_dump(mode="json"), **summary}


def run_unit(
    args: argparse.Namespace,
    split: Split,
    generated: list[str],
    teacher: FrozenEncoderTeacher,
    seed: int,
    quick: bool,
) -> dict[str, dict[str, float]]:
    """Teacher + the four student conditions on one (k, seed) split."""
    with tempfile.TemporaryDirectory(prefix="gen-bench-") as tmp:
        pairs = build_transfer_set(split, GenerationConfig(enabled=False), tmp)
    pool = [t for t, _ in pairs]
    gold = set(split.train_texts)
    gen = [t for t in generated if t not in gold]
    teacher.fit(split.train_texts, split.train_labels, seed)
    y = split.test_labels
    out: dict[str, dict[str, float]] = {
        "teacher": classification_metrics(y, teacher.predict_proba(split.test_texts))
    }
    n_cls = len(split.label_names)
    sizes = {"pool": pool, "pool+generated": pool + gen, "generated only": gen}
    for cond in CONDITIONS:
        seed_everything(seed)
        student = build_student(args.student, {}, split.label_names)
        t0 = time.perf_counter()
        if cond == "gold only":
            texts, labels = split.train_texts, split.train_labels
            probs = np.eye(n_cls, dtype=np.float32)[labels]
            cfg = gold_train(seed, quick)
        else:
            extra = sizes[cond]
            texts = split.train_texts + extra
            labels = split.train_labels + [-1] * len(extra)
            probs = teacher.predict_proba(texts)
            cfg = TrainConfig(seed=seed, epochs=QUICK["epochs"] if quick else TrainConfig().epochs)
        train_student(student, texts, probs, labels, cfg)
        m = classification_metrics(y, student.predict_proba(split.test_texts))
        m.update(transfer_size=len(texts), seconds=time.perf_counter() - t0)
        out[cond] = m
    return out


def summarise(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """mean ± std over seeds of each metric, per dataset, k and system."""
    groups: dict[tuple[str, int, str], list[dict[str, float]]] = {}
    for r in rows:
        for system, m in r["systems"].items():
            groups.setdefault((r["dataset"], r["k"], system), []).append(m)
    out: dict[str, Any] = {}
    for (ds, k, system), ms in groups.items():
        entry = {}
        for metric in ("accuracy", "macro_f1", "transfer_size"):
            vals = [m[metric] for m in ms if metric in m]
            if vals:
                entry[metric] = mean_std(vals)
        out.setdefault(ds, {}).setdefault(f"k={k}", {})[system] = entry
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--datasets", nargs="+", default=list(DATASETS), choices=list(DATASETS))
    ap.add_argument("--ks", nargs="+", type=int, default=[8, 64])
    ap.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    ap.add_argument("--teacher", default="minilm-l6", help="frozen encoder: minilm-l6, mpnet-base")
    ap.add_argument("--student", default="pqrnn")
    ap.add_argument("--strategy", default="finetune", choices=["finetune", "prompt"])
    ap.add_argument("--num-generated", type=int, default=2000, help="generated texts to keep")
    ap.add_argument("--gen-minutes", type=float, default=60.0, help="generation time budget")
    ap.add_argument("--finetune-steps", type=int, default=30)
    ap.add_argument("--max-new-tokens", type=int, default=64)
    ap.add_argument(
        "--gen-threads", type=int, default=None, help="torch threads for the LM (1 on a busy box)"
    )
    ap.add_argument("--max-pool", type=int, default=None, help="cap on pool texts per split")
    ap.add_argument("--cache", default=str(ROOT / "runs" / "bench-generation-cache"))
    ap.add_argument("--quick", action="store_true", help="smoke test: tiny sizes, k=8, seed 0")
    ap.add_argument("--out", default=None, help="default bench/results/generation[-quick].json")
    args = ap.parse_args(argv)
    quick = args.quick
    if quick:
        args.ks, args.seeds = args.ks[:1], args.seeds[:1]
    max_pool = QUICK["max_pool"] if quick else args.max_pool

    rows: list[dict[str, Any]] = []
    generation: dict[str, Any] = {}
    start = time.perf_counter()
    for key in args.datasets:
        d = DATASETS[key]
        ds = load_dataset(d["name"])

        def split_for(k: int, seed: int, ds: Any = ds, d: dict[str, Any] = d) -> Split:
            s = make_split(ds, k, seed, d["test_size"], split_seed=0)
            if max_pool is not None:
                s.pool = s.pool[:max_pool]
            if quick:
                n = QUICK["test"]
                s.test_texts, s.test_labels = s.test_texts[:n], s.test_labels[:n]
            return s

        print(f"[{key}] generating on the reference split (k={max(args.ks)}, seed 0)", flush=True)
        generated, generation[key] = generate_once(args, key, split_for(max(args.ks), 0), quick)
        print(f"[{key}] {len(generated)} generated texts kept", flush=True)
        teacher = FrozenEncoderTeacher.from_config(
            list(ds.label_names),
            FrozenTeacherConfig(model=args.teacher),
            cache_dir=Path(args.cache) / "embeddings",
        )
        for k in args.ks:
            for seed in args.seeds:
                print(f"[{key}] k={k} seed={seed}", flush=True)
                systems = run_unit(args, split_for(k, seed), generated, teacher, seed, quick)
                rows.append({"dataset": key, "k": k, "seed": seed, "systems": systems})
                accs = {s: round(m["accuracy"], 3) for s, m in systems.items()}
                print(f"[{key}] k={k} seed={seed} accuracy {accs}", flush=True)

    doc = {
        "benchmark": "generation",
        "quick": quick,
        "teacher": args.teacher,
        "student": args.student,
        "strategy": args.strategy,
        "summary": summarise(rows),
        "runs": rows,
        "generation": generation,
        "seconds": time.perf_counter() - start,
        "environment": environment(),
    }
    out = Path(args.out) if args.out else RESULTS / f"generation{'-quick' if quick else ''}.json"
    write_json(out, doc)
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
