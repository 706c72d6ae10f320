"""Embedding distillation: tiny students vs the teacher and a model2vec static model (issue #8).

One run, one transfer set, one cached teacher: each student (bag, pqrnn, transformer) is
distilled from the teacher's sentence vectors on unlabelled Rotten Tomatoes + BBC News text,
and the teacher, each student and a model2vec model distilled from the same teacher are scored
on the held-out test splits: Spearman of cosine similarities against the teacher, recall@10
of the teacher's nearest neighbours, linear-probe accuracy (RT, BBC), and single-thread
throughput (texts/s, batches of 256 RT test texts, tokenisation included).
Writes bench/results/embeddings.json.

    python bench/embeddings.py [--quick] [--students bag pqrnn transformer] [--teacher minilm-l6]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import RESULTS, ROOT, environment  # noqa: E402

from tinystudent.baselines.model2vec_baseline import distill_static_model  # noqa: E402
from tinystudent.embeddings import (  # noqa: E402
    CachedTeacher,
    EmbedDataSpec,
    EmbeddingStudent,
    EmbedTrainConfig,
    EvalConfig,
    ObjectiveConfig,
    SentenceTeacher,
    SentenceTeacherConfig,
    TextSource,
    collect_texts,
    distill_embedding_student,
    evaluate_encoder,
)
from tinystudent.embeddings.student import META, student_options  # noqa: E402
from tinystudent.evaluate.speed import throughput_tps, torch_threads  # noqa: E402
from tinystudent.io import read_json, write_json  # noqa: E402

# Each student's options and optimisation; the head is dropped, so head options are moot.
STUDENTS: dict[str, dict[str, Any]] = {
    "bag": {
        "options": {
            "kind": "bag",
            "embed_dim": 256,
            "vocab_size": 30_000,
            "init": "teacher",
            "max_tokens": 512,  # as model2vec; costs nothing on short texts
            "head_hidden": 0,
        },
        "train": {"epochs": 8, "batch_size": 128, "lr": 3e-3},
    },
    "pqrnn": {
        "options": {"kind": "pqrnn", "hidden": 128, "max_tokens": 128},
        "train": {"epochs": 4, "batch_size": 128, "lr": 3e-3},
    },
    "transformer": {
        "options": {
            "kind": "transformer",
            "init": "teacher_layers",
            "layers": 3,
            "max_tokens": 128,
        },
        "train": {"epochs": 1, "batch_size": 64, "lr": 1e-4},
    },
}
# Sub-batch of encode(): each 256-text call is length-sorted and cut into batches of 64, as
# the teacher's sentence-transformers encode does (one 256-wide padded batch is ~1.5x slower).
ENCODE_BATCH = 64
OBJECTIVE = ObjectiveConfig(mse=1.0, cosine=1.0, contrastive=0.1, temperature=0.05)


def data_spec(quick: bool) -> EmbedDataSpec:
    """RT (all text outside its 2,000-text test split) + BBC sentences (outside its 20% test)."""
    return EmbedDataSpec(
        sources=[
            TextSource(dataset="rotten_tomatoes", test_size=2000),
            TextSource(
                dataset="bbc_news", test_size=0.2, sentences=True, max_texts=500 if quick else 5000
            ),
        ],
        max_texts=2000 if quick else 20_000,
    )


def single_thread_tps(predict: Callable[[list[str]], Any], texts: list[str], quick: bool) -> float:
    """Texts/s on one thread (torch and BLAS), batches of 256, tokenisation included."""
    from threadpoolctl import threadpool_limits

    with torch_threads(1), threadpool_limits(1):
        return throughput_tps(predict, texts, batch_size=256, min_seconds=0.5 if quick else 3.0)


def encoder_of(model: EmbeddingStudent) -> Callable[[list[str]], np.ndarray]:
    def encode(texts: list[str]) -> np.ndarray:
        return model.encode(texts, batch_size=ENCODE_BATCH)

    return encode


def config_hash(*parts: Any) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:16]


def train_or_load(
    name: str,
    spec: dict[str, Any],
    texts: list[str],
    targets: np.ndarray,
    work: Path,
    quick: bool,
    teacher_model: str,
    data_key: str,
) -> tuple[EmbeddingStudent, dict[str, Any]]:
    """A student trained earlier with the same settings and data is reused, not retrained."""
    options = dict(spec["options"])
    kind = options.pop("kind")
    options = student_options(kind, options, teacher_model)
    train = EmbedTrainConfig(**{**spec["train"], **({"epochs": 1} if quick else {})})
    key = config_hash(kind, options, train.model_dump(), OBJECTIVE.model_dump(), data_key)
    out = work / "students" / name
    if (out / META).exists() and read_json(out / META).get("bench_key") == key:
        meta = read_json(out / META)
        return EmbeddingStudent.load(out), meta["training"]
    start = time.perf_counter()
    model, result = distill_embedding_student(kind, options, texts, targets, OBJECTIVE, train)
    training = {
        "seconds_total": time.perf_counter() - start,  # includes vocabulary / word-vector init
        "seconds_loop": result.seconds,
        "best_epoch": result.best_epoch,
        "best_val_cosine": result.best_score,
        "history": result.history,
        "train": train.model_dump(),
        "options": options,
    }
    model.save(out, {"bench_key": key, "training": training})
    return model, training


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--teacher", default="minilm-l6", help="catalogue name or local folder")
    ap.add_argument("--students", nargs="+", default=list(STUDENTS), choices=list(STUDENTS))
    ap.add_argument("--no-model2vec", action="store_true", help="skip the model2vec baseline")
    ap.add_argument("--quick", action="store_true", help="2k texts, 1 epoch: a smoke test")
    ap.add_argument("--work", default=str(ROOT / "runs" / "bench-embeddings"), help="cache dir")
    ap.add_argument("--out", default=None, help="results JSON (default bench/results/...)")
    ap.add_argument(
        "--threads", type=int, default=1, help="torch threads for training and evaluation"
    )
    args = ap.parse_args(argv)
    # On a shared 2-core machine a second OpenMP thread mostly waits at barriers (measured:
    # several times slower), so everything runs on one thread unless told otherwise.
    torch.set_num_threads(args.threads)
    quick = bool(args.quick)
    shared = Path(args.work)  # content-keyed teacher cache and model2vec: shared by both modes
    work = shared / ("quick" if quick else "full")
    out_path = Path(args.out or RESULTS / ("embeddings-quick.json" if quick else "embeddings.json"))
    eval_cfg = EvalConfig(
        geometry_texts=300 if quick else 1000, max_train=1000 if quick else 5000, k=10
    )
    timings: dict[str, float] = {}

    t0 = time.perf_counter()
    spec = data_spec(quick)
    transfer = collect_texts(spec)
    if quick:
        for task in transfer.tasks:  # smaller test splits keep the smoke test short
            task.test_texts, task.test_labels = task.test_texts[:400], task.test_labels[:400]
    timings["collect_texts"] = time.perf_counter() - t0
    print(f"transfer set: {len(transfer.texts)} texts {transfer.per_source}", flush=True)

    t0 = time.perf_counter()
    teacher_cfg = SentenceTeacherConfig(model=args.teacher, max_seq_length=128)
    teacher = SentenceTeacher.load(teacher_cfg)
    reference = CachedTeacher(teacher, shared / "cache")
    targets = reference(transfer.texts)
    timings["teacher_embeddings"] = time.perf_counter() - t0
    print(f"teacher vectors: {reference.computed} encoded in {timings['teacher_embeddings']:.0f}s")
    data_key = config_hash(spec.model_dump(), teacher.fingerprint)

    speed_texts = transfer.tasks[0].test_texts  # RT test snippets: short, as served
    rows: dict[str, dict[str, Any]] = {}

    def score(name: str, encode: Callable[[list[str]], np.ndarray], extra: dict[str, Any]) -> None:
        start = time.perf_counter()
        metrics = evaluate_encoder(encode, transfer.tasks, reference, eval_cfg)
        timings[f"evaluate_{name}"] = time.perf_counter() - start
        tps = extra.pop("tps_fn", encode)
        rows[name] = {
            **extra,
            "metrics": metrics,
            "throughput_1thread_tps": single_thread_tps(tps, speed_texts, quick),
        }
        mean = metrics["mean"]
        print(
            f"{name:<12} spearman {mean['spearman']:.3f} recall@10 {mean['recall_at_10']:.3f} "
            f"lr_acc {mean['lr_accuracy']:.3f} tps {rows[name]['throughput_1thread_tps']:.0f}",
            flush=True,
        )

    score(
        "teacher",
        reference,
        {"params": teacher.num_params(), "dim": teacher.dim, "tps_fn": teacher.encode},
    )

    if not args.no_model2vec:
        t0 = time.perf_counter()
        static = distill_static_model(args.teacher, shared / "model2vec", pca_dims=256)
        timings["model2vec_distill"] = time.perf_counter() - t0

        def m2v(texts: list[str]) -> np.ndarray:
            return np.asarray(static.encode(list(texts), use_multiprocessing=False), np.float32)

        emb = np.asarray(static.embedding)
        weights = getattr(static, "weights", None)
        score(
            "model2vec",
            m2v,
            {
                "params": int(emb.size + (0 if weights is None else np.asarray(weights).size)),
                "dim": int(emb.shape[1]),
                "size_bytes": int(emb.nbytes),
                "pca_dims": 256,
            },
        )

    for name in args.students:
        t0 = time.perf_counter()
        model, training = train_or_load(
            name, STUDENTS[name], transfer.texts, targets, work, quick, args.teacher, data_key
        )
        timings[f"train_{name}"] = time.perf_counter() - t0
        size = (work / "students" / name / "embedder.safetensors").stat().st_size
        score(
            name,
            encoder_of(model),
            {
                "kind": model.kind,
                "params": model.num_params(),
                "dim": model.dim,
                "pooled_dim": model.pooled_dim,
                "size_bytes": size,
                "training": training,
            },
        )

    base = rows.get("model2vec")
    for name, row in rows.items():
        row["vs_teacher_tps"] = (
            row["throughput_1thread_tps"] / rows["teacher"]["throughput_1thread_tps"]
        )
        if base is not None and name not in ("teacher", "model2vec"):
            m, b = row["metrics"]["mean"], base["metrics"]["mean"]
            row["vs_model2vec"] = {
                "spearman": m["spearman"] - b["spearman"],
                "recall_at_10": m["recall_at_10"] - b["recall_at_10"],
                "lr_accuracy": m["lr_accuracy"] - b["lr_accuracy"],
                "throughput_ratio": row["throughput_1thread_tps"] / base["throughput_1thread_tps"],
            }
    result = {
        "bench": "embeddings",
        "quick": quick,
        "environment": environment(),
        "teacher": {
            "model": args.teacher,
            "fingerprint": teacher.fingerprint,
            "max_seq_length": teacher_cfg.max_seq_length,
        },
        "data": {
            "train_texts": len(transfer.texts),
            "per_source": transfer.per_source,
            "spec": spec.model_dump(mode="json"),
        },
        "objective": OBJECTIVE.model_dump(),
        "evaluate": eval_cfg.model_dump(),
        "protocol": (
            "held-out texts = the test splits (RT 2,000; BBC 20%), never trained on. spearman: "
            "rank correlation of cosine similarities over all pairs of up to `geometry_texts` "
            "held-out texts vs the teacher's; recall_at_10: share of the teacher's 10 nearest "
            "neighbours the model also ranks top 10; lr_accuracy: logistic regression (C=1, "
            "unit-length + standardised embeddings) on up to `max_train` train-split texts, "
            "scored on the test split; throughput: 1 thread, calls of 256 RT test texts "
            "(encoded in length-sorted batches of 64)."
        ),
        "models": rows,
        "timings_s": timings,
    }
    out_path.parent.mkdir(parents=True, exist_ok=True)
    write_json(out_path, result)
    print(f"wrote {out_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
