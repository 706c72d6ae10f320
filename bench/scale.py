"""Teacher labeling throughput: one process against Ray actor pools, on this machine.

A MiniLM-L6 teacher is fine-tuned for one epoch on 32 Rotten Tomatoes reviews (its accuracy
is irrelevant here, only its cost), saved, and then labels N other reviews into a fresh
soft-label cache with: the single-process `label_texts` (all threads, and one thread), and
`label_texts_ray` with 1 worker x 1 CPU, 2 workers x 1 CPU and 1 worker x 2 CPUs. Ray
timings are end to end (actor start, teacher load in every actor, labeling, cache writes);
a second call on two one-text batches per worker estimates that fixed cost, so a steady rate is
reported too: N / (end-to-end - start-up). Writes bench/results/scale.json.

    python bench/scale.py [--n 1000] [--quick]
"""

from __future__ import annotations

import argparse
import logging
import os
import random
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import RESULTS, environment  # noqa: E402

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import numpy as np  # noqa: E402
import torch  # noqa: E402

from tinystudent.data import load_dataset  # noqa: E402
from tinystudent.io import write_json  # noqa: E402
from tinystudent.label import label_texts  # noqa: E402
from tinystudent.scale import label_texts_ray, ray_session  # noqa: E402
from tinystudent.seed import seed_everything  # noqa: E402
from tinystudent.teachers import EncoderTeacher, EncoderTeacherConfig  # noqa: E402

BATCH = 64  # = the teacher's predict_batch_size, so every path batches the same texts


def single_process(teacher_dir: Path, texts: list[str], cache: Path, threads: int) -> dict:
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        start = time.perf_counter()
        teacher = EncoderTeacher.load(teacher_dir)
        load_s = time.perf_counter() - start
        probs, stats = label_texts(teacher, texts, cache, shard_size=1024)
    finally:
        torch.set_num_threads(before)
    total = load_s + stats.seconds
    return {
        "threads": threads,
        "load_seconds": load_s,
        "label_seconds": stats.seconds,
        "seconds": total,
        "texts_per_s": len(texts) / total,
        "steady_texts_per_s": len(texts) / stats.seconds,
        "_probs": probs,
    }


def on_ray(teacher_dir: Path, texts: list[str], root: Path, workers: int, cpus: float) -> dict:
    # Fixed cost: the same pool labeling two single-text batches per actor (the pool queues
    # two per actor), i.e. starting every actor and loading the teacher in it.
    small = texts[: 2 * workers]
    _, s_small = label_texts_ray(
        teacher_dir, small, root / "small", workers, 1, cpus_per_worker=cpus
    )
    probs, stats = label_texts_ray(
        teacher_dir, texts, root / "full", workers, BATCH, cpus_per_worker=cpus
    )
    steady = len(texts) / max(1e-9, stats.seconds - s_small.seconds)
    return {
        "workers": workers,
        "cpus_per_worker": cpus,
        "seconds": stats.seconds,
        "texts_per_s": len(texts) / stats.seconds,
        "startup_seconds": s_small.seconds,
        "steady_texts_per_s": steady,
        "_probs": probs,
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=1000, help="texts to label")
    ap.add_argument("--quick", action="store_true", help="200 texts, for a smoke test")
    ap.add_argument("--out", default=str(RESULTS / "scale.json"))
    args = ap.parse_args(argv)
    n = 200 if args.quick else args.n
    logging.basicConfig(level=logging.WARNING)
    cpus = os.cpu_count() or 1

    ds = load_dataset("rotten_tomatoes")
    order = list(range(len(ds.texts)))
    random.Random(0).shuffle(order)
    train = order[:32]
    texts = [ds.texts[i] for i in order[32 : 32 + n]]
    results: dict[str, Any] = {
        "environment": environment(),
        "load_average_at_start": os.getloadavg(),
        "n_texts": n,
        "batch_size": BATCH,
        "teacher": "minilm-l6 fine-tuned 1 epoch on 32 texts",
    }
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        seed_everything(0)
        teacher = EncoderTeacher.from_pretrained(
            ds.label_names, EncoderTeacherConfig(model="minilm-l6", epochs=1)
        )
        teacher.fine_tune([ds.texts[i] for i in train], [ds.labels[i] for i in train])
        teacher.save(root / "teacher")
        del teacher

        runs: dict[str, dict] = {}
        for threads in sorted({cpus, 1}, reverse=True):
            name = f"single_process_{threads}_threads"
            runs[name] = single_process(root / "teacher", texts, root / name, threads)
            print(f"[bench] {name}: {runs[name]['texts_per_s']:.1f} texts/s", flush=True)

        start = time.perf_counter()
        with ray_session(num_cpus=cpus):
            results["ray_init_seconds"] = time.perf_counter() - start
            configs = [(1, 1.0), (2, 1.0), (1, float(cpus))] if cpus >= 2 else [(1, 1.0)]
            for workers, per in configs:
                name = f"ray_{workers}_workers_x_{per:g}_cpu"
                runs[name] = on_ray(root / "teacher", texts, root / name, workers, per)
                print(
                    f"[bench] {name}: {runs[name]['texts_per_s']:.1f} texts/s end to end, "
                    f"{runs[name]['steady_texts_per_s']:.1f} steady",
                    flush=True,
                )
        reference = runs[f"single_process_{cpus}_threads"]["_probs"]
        for r in runs.values():
            r["max_abs_diff_vs_single_process"] = float(np.abs(r.pop("_probs") - reference).max())
        results["runs"] = runs
        results["load_average_at_end"] = os.getloadavg()
    write_json(args.out, results)
    print(f"[bench] wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
