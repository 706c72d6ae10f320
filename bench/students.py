"""Every student kind on the same cached teacher labels of the Rotten Tomatoes k = 64 recipe.

Writes bench/results/students.json: per student, test accuracy, % of the teacher kept,
parameters, fp32 and int8 size on disk, and single-thread CPU speed (batch-256 throughput,
batch-1 latency p50/p95, tokenisation included), with the teacher measured in the same run.

    python bench/students.py [--run runs/demo] [--kinds pqrnn bilstm ...] [--quick]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import RESULTS, environment  # noqa: E402

from tinystudent.data import Split  # noqa: E402
from tinystudent.evaluate import classification_metrics  # noqa: E402
from tinystudent.evaluate.speed import speed_profile  # noqa: E402
from tinystudent.io import read_json, write_json  # noqa: E402
from tinystudent.label import label_texts  # noqa: E402
from tinystudent.pipeline import run, transfer_set  # noqa: E402
from tinystudent.recipe import default_recipe  # noqa: E402
from tinystudent.students import build_student  # noqa: E402
from tinystudent.students.int8 import dynamic_int8, save_int8  # noqa: E402
from tinystudent.teachers import EncoderTeacher  # noqa: E402
from tinystudent.train import TrainConfig, train_student  # noqa: E402

# Each student's bench configuration: its defaults unless a kind needs something else.
STUDENT_KINDS: dict[str, dict[str, Any]] = {
    "pqrnn": {},
    "bilstm": {},
    "cnn": {},
    "bag": {},
    "transformer": {},
}


def measure(predict, texts: list[str], quick: bool) -> dict[str, float]:
    prof = speed_profile(
        predict,
        texts,
        threads=[1],
        latency_n=50 if quick else 200,
        min_seconds=0.5 if quick else 2.0,
    )
    return prof["threads=1"]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--run",
        default="runs/demo",
        help="run dir of the default recipe (made if "
        "absent): its split, teacher and soft-label cache are reused",
    )
    ap.add_argument("--kinds", nargs="+", default=list(STUDENT_KINDS))
    ap.add_argument("--quick", action="store_true", help="tiny budgets, for a smoke test")
    ap.add_argument("--out", default=str(RESULTS / "students.json"))
    args = ap.parse_args(argv)

    recipe = default_recipe()
    run_dir = Path(args.run)
    if not (run_dir / "report.json").exists():
        print(f"[bench] no finished run in {run_dir}: running the default recipe first")
        run(recipe, run_dir)
    split = Split.from_json(read_json(run_dir / "data" / "split.json"))
    teacher = EncoderTeacher.load(run_dir / "teacher")
    texts, labels = transfer_set(split)
    cache = Path(recipe.label.cache_dir or run_dir / "cache")
    probs, stats = label_texts(teacher, texts, cache)
    test_probs, _ = label_texts(teacher, split.test_texts, cache)
    print(f"[bench] transfer set {len(texts)} texts ({stats.hits} from the cache)")
    if args.quick:
        texts, labels, probs = texts[:1500], labels[:1500], probs[:1500]

    speed_texts = split.test_texts[:512]
    t_metrics = classification_metrics(split.test_labels, test_probs)
    teacher_row = {
        "name": recipe.teacher.model,
        **t_metrics,
        "params": teacher.num_params(),
        "size_bytes": (run_dir / "teacher" / "teacher.safetensors").stat().st_size,
        **measure(
            teacher.predict_proba, speed_texts[:64] if args.quick else speed_texts, args.quick
        ),
    }
    print(
        f"[bench] teacher acc {t_metrics['accuracy']:.3f}, "
        f"{teacher_row['throughput_tps']:.0f} texts/s on 1 thread"
    )
    train_cfg = recipe.train.model_copy(update={"epochs": 1} if args.quick else {})
    rows: dict[str, Any] = {}
    teacher_pred = test_probs.argmax(1)
    for kind in args.kinds:
        start = time.perf_counter()
        student = build_student(kind, STUDENT_KINDS.get(kind, {}), split.label_names)
        result = train_student(student, texts, probs, labels, TrainConfig(**train_cfg.model_dump()))
        train_s = time.perf_counter() - start
        p = student.predict_proba(split.test_texts)
        fast = dynamic_int8(student)
        q = fast.predict_proba(split.test_texts)
        with tempfile.TemporaryDirectory() as tmp:
            student.save(tmp)
            fp32_bytes = (Path(tmp) / "student.safetensors").stat().st_size
            int8_bytes = save_int8(student, Path(tmp) / "int8.safetensors")
        m = classification_metrics(split.test_labels, p)
        row = {
            "kind": kind,
            "options": STUDENT_KINDS.get(kind, {}),
            **m,
            "pct_of_teacher": 100 * m["accuracy"] / t_metrics["accuracy"],
            "agreement_with_teacher": float((p.argmax(1) == teacher_pred).mean()),
            "int8_accuracy": classification_metrics(split.test_labels, q)["accuracy"],
            "params": student.num_params(),
            "compression": teacher.num_params() / student.num_params(),
            "fp32_bytes": fp32_bytes,
            "int8_bytes": int8_bytes,
            "train_seconds": train_s,
            "best_epoch": result.best_epoch,
            **measure(student.predict_proba, speed_texts, args.quick),
        }
        row["int8_speed"] = measure(fast.predict_proba, speed_texts, args.quick)
        row["speedup_vs_teacher"] = row["throughput_tps"] / teacher_row["throughput_tps"]
        row["int8_speedup_vs_teacher"] = (
            row["int8_speed"]["throughput_tps"] / teacher_row["throughput_tps"]
        )
        rows[kind] = row
        print(
            f"[bench] {kind}: acc {m['accuracy']:.3f} ({row['pct_of_teacher']:.1f}% of "
            f"teacher), {row['params']:,} params, int8 {int8_bytes / 1e6:.2f} MB, "
            f"{row['throughput_tps']:.0f} texts/s (x{row['speedup_vs_teacher']:.0f}; int8 "
            f"x{row['int8_speedup_vs_teacher']:.0f}), "
            f"p50 {row['p50_ms']:.2f} ms, trained in {train_s:.0f} s"
        )

    result_doc = {
        "benchmark": "students",
        "recipe": recipe.model_dump(mode="json"),
        "quick": args.quick,
        "test_size": len(split.test_texts),
        "transfer_size": len(texts),
        "teacher": teacher_row,
        "students": rows,
        "environment": environment(),
    }
    write_json(args.out, result_doc)
    print(f"[bench] wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
