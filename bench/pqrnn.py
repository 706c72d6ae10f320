"""The fused pQRNN against the reference, side by side in one run: training and inference.

A pQRNN (default config) is trained on Rotten Tomatoes with the gold labels (no teacher: the
point is speed and parity, and gold labels are the cheapest real signal) along three
training paths and two seeds, the runs interleaved so a busy machine slows all alike: `today`
(the reference ops, featurizing every batch afresh: the path before the packed kernel and the
text cache), `reference` (the reference ops with the text cache, today's default now) and
`fused` (the packed numba kernel with the text cache); per-epoch seconds and test accuracy
are reported per run. Step time is measured too, the paths interleaved batch by batch (best
of 3 per batch). Then the fused-trained student is exported (fp32 + int8)
and the light runtime is timed for every path: kernel (reference = the full ONNX graph,
fused = the numba kernel), variant (fp32, int8) and threads (1, all), tokenisation included;
batch-1 latency on a fresh predictor (each text and most tokens new) and again once every
text has been seen (a server's steady state). The preprocessing stage is timed on its own.

Writes bench/results/pqrnn.json (with the machine, versions and command).

With `--transfer`, only the training half runs, on the demo's transfer set with its
teacher's soft labels (`pqrnn_transfer.py` runs the demo's data, teacher, transfer and label
stages once into `runs/pqrnn-demo-transfer` and resumes from there): step times and
per-epoch runs of the three paths, test accuracy on the demo's held-out split and agreement
with its teacher; writes bench/results/pqrnn_transfer.json.

    python bench/pqrnn.py [--quick] [--out bench/results/pqrnn.json]
    python bench/pqrnn.py --transfer [--epochs 3] [--seeds 0,1] [--quick]
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import RESULTS, environment  # noqa: E402

from tinystudent.data.builtin import load_rotten_tomatoes  # noqa: E402
from tinystudent.evaluate import classification_metrics  # noqa: E402
from tinystudent.evaluate.speed import latency_ms, throughput_tps, torch_threads  # noqa: E402
from tinystudent.export import export_onnx  # noqa: E402
from tinystudent.inference import Predictor  # noqa: E402
from tinystudent.losses.ce import hard_ce  # noqa: E402
from tinystudent.losses.kd import kd_kl  # noqa: E402
from tinystudent.students import Student, build_student  # noqa: E402
from tinystudent.train import TrainConfig, train_student  # noqa: E402
from tinystudent.train.engine import build_schedule  # noqa: E402
from tinystudent.train.rows import bucketed_batches, epoch_steps  # noqa: E402

LABELS = ["fresh", "rotten"]


TRAIN_PATHS: dict[str, dict[str, Any]] = {
    "today": {"kernel": "reference", "text_cache": 0},
    "reference": {"kernel": "reference"},
    "fused": {"kernel": "fused"},
}


def step_times(
    texts: list[str],
    labels: list[int],
    batch_size: int,
    batches: int,
    epochs: int,
    probs: np.ndarray | None = None,
) -> dict[str, Any]:
    """Seconds per training step (forward, backward, AdamW) of each path on the same batches,
    interleaved; summed over the first `batches` of an epoch's batches as the engine draws
    them (length-bucketed pools), with the learning rate of an `epochs`-epoch run's start.
    With `probs` (a teacher's soft labels) the loss is the engine's default objective on
    them (kd at T = 2, weight 0.9, + ce on gold rows), else cross-entropy on `labels`."""
    lengths = [len(t) for t in texts]
    gen = torch.Generator().manual_seed(0)
    groups = bucketed_batches(list(range(len(texts))), lengths, batch_size, gen)[:batches]
    models = {}
    cfg = TrainConfig(epochs=epochs)
    # the whole run's steps (and never fewer than taken here: a warm-up + 3 per batch)
    n_steps = max(epochs * epoch_steps(len(texts), batch_size), 1 + 3 * len(groups))
    for name, options in TRAIN_PATHS.items():
        torch.manual_seed(0)
        student = build_student("pqrnn", options, LABELS)
        student.train()
        # The engine's optimizer, warm-up schedule and clipping: without them (a flat
        # 3e-3 from step 0) the gates saturate within a few steps and both kernels slow
        # down many times over, which no real run sees. The schedule is sized to the whole
        # run, as the engine sizes it, so these steps see the learning rates of its start.
        opt = torch.optim.AdamW(student.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
        sched = build_schedule("one_cycle", opt, n_steps)
        models[name] = (student, opt, sched)

    def step(name: str, idx: list[int]) -> tuple[float, float]:
        student, opt, sched = models[name]
        y = torch.tensor([labels[i] for i in idx])
        start, cpu = time.perf_counter(), time.process_time()
        logits = student(**student.featurize([texts[i] for i in idx])).logits
        if probs is None:
            loss = torch.nn.functional.cross_entropy(logits, y)
        else:
            loss = soft_loss(logits, torch.from_numpy(probs[idx]), y, cfg)
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(student.parameters(), cfg.max_grad_norm)
        opt.step()
        sched.step()
        return time.perf_counter() - start, time.process_time() - cpu

    for name in models:  # compile / warm up (and fill the text cache, as epoch 1 does)
        for idx in groups:
            student = models[name][0]
            student.featurize([texts[i] for i in idx])
        step(name, groups[0])
    total = dict.fromkeys(models, 0.0)
    total_cpu = dict.fromkeys(models, 0.0)
    for r, idx in enumerate(groups):
        best = dict.fromkeys(models, float("inf"))
        best_cpu = dict.fromkeys(models, float("inf"))
        for rep in range(3):
            names = list(TRAIN_PATHS)
            turn = names[(r + rep) % 3 :] + names[: (r + rep) % 3]
            for name in turn:
                wall, cpu = step(name, idx)
                best[name] = min(best[name], wall)
                best_cpu[name] = min(best_cpu[name], cpu)
        for name in models:
            total[name] += best[name]
            total_cpu[name] += best_cpu[name]
    steps = len(groups)
    return {
        "batch_size": batch_size,
        "steps": steps,
        "step_ms": {k: 1000 * v / steps for k, v in total.items()},
        "step_cpu_ms": {k: 1000 * v / steps for k, v in total_cpu.items()},
        "speedup": total["today"] / total["fused"],
        "speedup_vs_reference": total["reference"] / total["fused"],
        "cpu_speedup": total_cpu["today"] / total_cpu["fused"],
    }


def soft_loss(
    logits: torch.Tensor, probs: torch.Tensor, labels: torch.Tensor, cfg: TrainConfig
) -> torch.Tensor:
    """The engine's default objective (no `objectives` set): kd on the teacher's
    probabilities at `temperature`, weight `alpha`, + ce on the gold rows (label >= 0)."""
    kd = kd_kl(logits, probs, cfg.temperature)
    return cfg.alpha * kd + (1 - cfg.alpha) * hard_ce(logits, labels)


def train(
    path: str,
    texts: list[str],
    labels: list[int],
    epochs: int,
    seed: int,
    probs: np.ndarray | None = None,
    label_names: list[str] = LABELS,
) -> tuple[Student, float, float]:
    """A student trained along `path`: wall and CPU seconds of `train_student` (the CPU
    time is this process's: with one thread it is the training's own, whatever else the
    machine runs). Without `probs`, one-hot gold labels stand in for a teacher."""
    torch.manual_seed(seed)
    student = build_student("pqrnn", TRAIN_PATHS[path], label_names)
    if probs is None:
        probs = np.eye(len(label_names), dtype=np.float32)[labels]
    start, cpu = time.perf_counter(), time.process_time()
    cfg = TrainConfig(epochs=epochs, patience=epochs, seed=seed)
    train_student(student, texts, probs, labels, cfg)
    return student.eval(), time.perf_counter() - start, time.process_time() - cpu


def training_runs(
    data: tuple[list[str], list[int], list[str], list[int]],
    epochs: int,
    seeds: list[int],
    probs: np.ndarray | None = None,
    teacher_test: np.ndarray | None = None,
    label_names: list[str] = LABELS,
) -> tuple[dict[str, Any], dict[str, Student]]:
    """Each path x seed, interleaved (the order rotates per seed); the first seed's students
    are returned for export. With `probs` the students learn from those soft labels and
    `teacher_test` (the teacher's test probabilities) gives each run its agreement."""
    texts, labels, test_texts, test_labels = data
    runs: dict[str, Any] = {}
    kept: dict[str, Student] = {}
    for n, seed in enumerate(seeds):
        names = list(TRAIN_PATHS)
        for kernel in names[n % 3 :] + names[: n % 3]:
            with torch_threads(1):
                student, secs, cpu = train(kernel, texts, labels, epochs, seed, probs, label_names)
            p = student.predict_proba(test_texts)
            runs[f"{kernel} seed={seed}"] = {
                "kernel": kernel,
                "options": TRAIN_PATHS[kernel],
                "seed": seed,
                "epochs": epochs,
                "seconds": secs,
                "seconds_per_epoch": secs / epochs,
                "cpu_seconds_per_epoch": cpu / epochs,
                **classification_metrics(test_labels, p),
            }
            if teacher_test is not None:
                agree = float((p.argmax(1) == teacher_test.argmax(1)).mean())
                runs[f"{kernel} seed={seed}"]["agreement_with_teacher"] = agree
            print(f"  trained {kernel} seed {seed}: {runs[f'{kernel} seed={seed}']}", flush=True)
            if seed == seeds[0]:
                kept[kernel] = student

    def mean(key: str, path: str) -> float:
        return sum(r[key] for r in runs.values() if r["kernel"] == path) / len(seeds)

    per_epoch = {k: mean("seconds_per_epoch", k) for k in TRAIN_PATHS}
    cpu_epoch = {k: mean("cpu_seconds_per_epoch", k) for k in TRAIN_PATHS}
    summary = {
        "runs": runs,
        "seconds_per_epoch": per_epoch,
        "cpu_seconds_per_epoch": cpu_epoch,
        "accuracy": {k: mean("accuracy", k) for k in TRAIN_PATHS},
        "speedup_per_epoch": per_epoch["today"] / per_epoch["fused"],
        "speedup_per_epoch_vs_reference": per_epoch["reference"] / per_epoch["fused"],
        "cpu_speedup_per_epoch": cpu_epoch["today"] / cpu_epoch["fused"],
    }
    if teacher_test is not None:
        summary["agreement_with_teacher"] = {
            k: mean("agreement_with_teacher", k) for k in TRAIN_PATHS
        }
    return summary, kept


def reproducible(texts: list[str], labels: list[int]) -> bool:
    """Two fused trainings with one seed end with the same weights, bit for bit."""
    states = []
    for _ in range(2):
        with torch_threads(1):
            student, _, _ = train("fused", texts, labels, 1, 0)
        states.append(student.state_dict())
    return all(torch.equal(states[0][k], states[1][k]) for k in states[0])


def runtime_rows(
    export_dir: Path, texts: list[str], latency_n: int, seconds: float, rounds: int
) -> dict[str, Any]:
    """Every (kernel, variant, threads) path; the grid is run `rounds` times, best kept."""
    rows: dict[str, Any] = {}
    cores = os.cpu_count() or 1
    for _ in range(rounds):
        for threads in (1, cores):
            for variant in ("fp32", "int8"):
                for kernel in ("reference", "fused"):
                    p = Predictor.load(export_dir, variant, threads=threads, kernel=kernel)  # type: ignore[arg-type]
                    first = latency_ms(p.predict_proba, texts, n=latency_n)  # fresh predictor
                    row = latency_ms(p.predict_proba, texts, n=latency_n)  # every text seen
                    row["throughput_tps"] = throughput_tps(
                        p.predict_proba, texts, min_seconds=seconds
                    )
                    key = f"{kernel} {variant} threads={threads}"
                    old = rows.get(key)
                    if old is None or row["throughput_tps"] > old["throughput_tps"]:
                        rows[key] = {
                            "kernel": kernel,
                            "variant": variant,
                            "threads": threads,
                            **row,
                            "p50_ms": min(row["p50_ms"], (old or row)["p50_ms"]),
                            "p50_ms_first_pass": min(
                                first["p50_ms"], (old or {}).get("p50_ms_first_pass", 1e9)
                            ),
                        }
    return rows


def preprocess_rows(export_dir: Path, texts: list[str], seconds: float) -> dict[str, float]:
    """Texts/s of the front end alone at batch 256: the reference's tokenise + hash + pad
    (warm memo), and the fused runtime's tokenise + token-table lookup (warm and cold)."""
    ref = Predictor.load(export_dir, "fp32", threads=1, kernel="reference").preprocessor
    fused = Predictor.load(export_dir, "fp32", threads=1, kernel="fused").fused
    from tinystudent.inference.preprocess import tokenize

    def fused_front(batch: list[str]) -> None:
        toks = [tokenize(t, fused.lowercase)[: fused.max_tokens] or [""] for t in batch]
        fused._lookup([t for tk in toks for t in tk])

    def cold_front(batch: list[str]) -> None:
        fused.clear_cache()
        fused_front(batch)

    def cold_hash(batch: list[str]) -> None:
        ref.projection._memo.clear()
        ref(batch)

    return {
        "reference tokenise+hash+pad (warm memo)": throughput_tps(ref, texts, min_seconds=seconds),
        "reference tokenise+hash+pad (cold memo)": throughput_tps(
            cold_hash, texts, min_seconds=seconds
        ),
        "fused tokenise+table lookup (warm table)": throughput_tps(
            fused_front, texts, min_seconds=seconds
        ),
        "fused tokenise+hash+table rows (cold table)": throughput_tps(
            cold_front, texts, min_seconds=seconds
        ),
    }


def ratios(result: dict[str, Any]) -> dict[str, float]:
    """The issue's bars, from this one run, 1 thread: fused over reference (runtime), fused
    over today's path and over the cached reference (training)."""
    rt = result["runtime"]
    fused8, ref8 = rt["fused int8 threads=1"], rt["reference int8 threads=1"]
    return {
        "training_per_epoch_speedup": result["training"]["speedup_per_epoch"],
        "training_per_epoch_speedup_vs_reference": result["training"][
            "speedup_per_epoch_vs_reference"
        ],
        "training_step_speedup": result["training_step"]["speedup"],
        "int8_1thread_throughput_speedup": fused8["throughput_tps"] / ref8["throughput_tps"],
        "int8_1thread_p50_ms": fused8["p50_ms"],
        "int8_1thread_p50_ms_first_pass": fused8["p50_ms_first_pass"],
        "int8_1thread_p50_speedup": ref8["p50_ms"] / fused8["p50_ms"],
    }


def transfer_main(args: argparse.Namespace) -> int:
    """Training only, on the demo's transfer set with its teacher's soft labels (see
    `pqrnn_transfer`): step times and per-epoch runs of every path, accuracy on the demo's
    test split and agreement with its teacher."""
    from pqrnn_transfer import demo_transfer

    d = demo_transfer(args.transfer_dir)
    torch.set_num_threads(1)
    texts, probs, labels = d.texts, d.probs, d.labels
    test_texts, test_labels = d.test_texts, d.test_labels
    if args.quick:
        texts, probs, labels = texts[:2000], probs[:2000], labels[:2000]
        test_texts, test_labels = test_texts[:300], test_labels[:300]
    seeds = [int(s) for s in args.seeds.split(",")]
    epochs = args.epochs or (1 if args.quick else 3)
    teacher_acc = float((d.teacher_test_probs.argmax(1) == np.array(d.test_labels)).mean())
    result: dict[str, Any] = {"benchmark": "pqrnn_transfer", "quick": args.quick}
    result["load_average_before"] = os.getloadavg()
    result["data"] = {
        "dataset": "rotten_tomatoes (the demo's split: k=64, 2,000 held out)",
        "transfer": len(texts),
        "gold_in_transfer": sum(1 for y in labels if y >= 0),
        "test": len(test_texts),
        "labels": "the demo's teacher (MiniLM-L6 fine-tuned on the 128 gold texts) soft labels",
        "teacher_test_accuracy": teacher_acc,
    }
    print(f"[bench] transfer set {result['data']}", flush=True)
    print("[bench] training step time, today / reference / fused ...", flush=True)
    with torch_threads(1):
        result["training_step"] = step_times(
            texts, labels, 64, 8 if args.quick else 30, epochs, probs
        )
    print(f"  {result['training_step']}", flush=True)
    data = (texts, labels, test_texts, test_labels)
    teacher_test = d.teacher_test_probs[: len(test_texts)]
    result["training"], _ = training_runs(data, epochs, seeds, probs, teacher_test, d.label_names)
    result["ratios"] = {
        "training_per_epoch_speedup": result["training"]["speedup_per_epoch"],
        "training_per_epoch_cpu_speedup": result["training"]["cpu_speedup_per_epoch"],
        "training_step_speedup": result["training_step"]["speedup"],
        "training_step_cpu_speedup": result["training_step"]["cpu_speedup"],
    }
    print(f"  ratios {result['ratios']}", flush=True)
    result["environment"] = environment()
    result["load_average_after"] = os.getloadavg()
    from tinystudent.io import write_json

    out = args.out or str(RESULTS / "pqrnn_transfer.json")
    write_json(out, result)
    print(f"[bench] wrote {out}")
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="small budgets, for a smoke test")
    ap.add_argument("--out", default=None, help="default bench/results/pqrnn[_transfer].json")
    ap.add_argument(
        "--transfer",
        action="store_true",
        help="training only, on the demo's transfer set with its teacher's soft labels",
    )
    ap.add_argument("--transfer-dir", default=None, help="run directory of the demo stages")
    ap.add_argument("--epochs", type=int, default=None, help="--transfer: epochs per run")
    ap.add_argument("--seeds", default="0,1", help="--transfer: comma-separated seeds")
    args = ap.parse_args(argv)
    if args.transfer:
        return transfer_main(args)
    args.out = args.out or str(RESULTS / "pqrnn.json")
    torch.set_num_threads(1)
    ds = load_rotten_tomatoes()
    order = list(range(len(ds.texts)))
    random.Random(0).shuffle(order)
    n_test = len(order) // 5  # a fixed 20% held out; every other labelled text trains
    test_idx, train_idx = order[:n_test], order[n_test:]
    if args.quick:
        test_idx, train_idx = test_idx[:300], train_idx[:1200]
    texts, labels = [ds.texts[i] for i in train_idx], [ds.labels[i] for i in train_idx]
    test_texts, test_labels = [ds.texts[i] for i in test_idx], [ds.labels[i] for i in test_idx]
    epochs = 1 if args.quick else 3
    result: dict[str, Any] = {"benchmark": "pqrnn", "quick": args.quick}
    result["load_average_before"] = os.getloadavg()
    result["data"] = {"dataset": "rotten_tomatoes", "train": len(texts), "test": len(test_texts)}

    print("[bench] training step time, reference vs fused ...", flush=True)
    with torch_threads(1):
        result["training_step"] = step_times(texts, labels, 64, 8 if args.quick else 30, epochs)
    print(f"  {result['training_step']}", flush=True)
    data = (texts, labels, test_texts, test_labels)
    result["training"], students = training_runs(data, epochs, [0] if args.quick else [0, 1])
    result["training"]["reproducible"] = reproducible(texts[:1000], labels[:1000])
    print(f"  fused training reproducible: {result['training']['reproducible']}", flush=True)

    with tempfile.TemporaryDirectory() as tmp:
        export_dir = Path(tmp) / "export"
        facts = export_onnx(students["fused"], export_dir, int8=True, check_texts=test_texts)
        result["export"] = facts
        ref32 = Predictor.load(export_dir, "fp32", kernel="reference").predict_proba(test_texts)
        parity: dict[str, Any] = {}
        for variant in ("fp32", "int8"):
            got = Predictor.load(export_dir, variant, kernel="fused").predict_proba(test_texts)  # type: ignore[arg-type]
            ref = Predictor.load(export_dir, variant, kernel="reference").predict_proba(test_texts)  # type: ignore[arg-type]
            parity[variant] = {
                "fused_vs_reference_max_abs_diff": float(np.abs(got - ref).max()),
                "fused_agreement_with_fp32": float((got.argmax(1) == ref32.argmax(1)).mean()),
                "reference_agreement_with_fp32": float((ref.argmax(1) == ref32.argmax(1)).mean()),
            }
        result["parity"] = parity
        print(f"  parity {parity}", flush=True)
        speed_texts = test_texts[:512]
        seconds = 0.5 if args.quick else 2.0
        result["preprocess_tps"] = preprocess_rows(export_dir, speed_texts, seconds)
        print(f"  preprocess {result['preprocess_tps']}", flush=True)
        result["runtime"] = runtime_rows(
            export_dir, speed_texts, 50 if args.quick else 500, seconds, 1 if args.quick else 2
        )
    for key, row in result["runtime"].items():
        print(f"  {key}: {row['throughput_tps']:,.0f} texts/s, p50 {row['p50_ms']:.3f} ms")
    result["ratios"] = ratios(result)
    print(f"  ratios {result['ratios']}", flush=True)
    result["environment"] = environment()
    result["load_average_after"] = os.getloadavg()
    from tinystudent.io import write_json

    write_json(args.out, result)
    print(f"[bench] wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
