"""Fingerprint student training: a sha256 of the final weights and of the per-epoch log.

Refactors of the training loop must not change results. Run this before and after a change
(one thread, same machine) and compare: every line must be identical. Cases cover the
classic kd + ce objectives (on synthetic text and on 400 real Rotten Tomatoes texts),
objectives with weights of their own plus a continuation schedule, early stopping, a run
resumed after a crash mid-epoch, and (with `--ddp`) two gloo ranks.

    PYTHONPATH=src python bench/student_hash.py [--ddp]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.tiny_students import TINY, synthetic  # noqa: E402
from tinystudent.seed import seed_everything  # noqa: E402
from tinystudent.students import build_student  # noqa: E402
from tinystudent.train import TeacherSignals, TrainConfig, train_student  # noqa: E402

NAMES = ["neg", "pos"]


class Crash(Exception):
    """Raised from the per-step test hook to simulate a killed run."""


def _data(n: int = 300, real: bool = False) -> tuple[list[str], TeacherSignals, list[int]]:
    """Synthetic reviews, or (`real`) the first `n` Rotten Tomatoes texts with their gold
    labels turned into noisy teacher probabilities."""
    if real:
        from tinystudent.data import load_dataset

        ds = load_dataset("rotten_tomatoes")
        texts, gold = list(ds.texts[:n]), [int(y) for y in ds.labels[:n]]
    else:
        texts, gold = synthetic(n, seed=7)
    rng = np.random.default_rng(0)
    p = np.clip(np.array(gold, dtype=np.float32) * 0.6 + 0.2 + rng.normal(0, 0.1, n), 0.01, 0.99)
    probs = np.stack([1 - p, p], axis=1).astype(np.float32)
    emb = rng.normal(size=(n, 12)).astype(np.float32)
    labels = [y if i % 6 == 0 else -1 for i, y in enumerate(gold)]
    return texts, TeacherSignals(probs=probs, embeddings=emb), labels


def _sha(state: dict[str, torch.Tensor]) -> str:
    h = hashlib.sha256()
    for k in sorted(state):
        h.update(k.encode())
        h.update(state[k].detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy())
    return h.hexdigest()[:16]


CASES: dict[str, tuple[str, dict[str, Any]]] = {
    "pqrnn-kd-ce": ("pqrnn", {"epochs": 2, "batch_size": 32}),
    "bag-objectives-schedule": (
        "bag",
        {
            "epochs": 2,
            "batch_size": 32,
            "objectives": [
                {"kind": "kd", "temperature": 2.0},
                {"kind": "ce", "weight": 0.3},
                {"kind": "embedding", "loss": "both", "weight": 0.5},
                {"kind": "rdrop", "weight": 0.2},
            ],
            "schedule": {"temperature": [4.0, 1.0], "weights": {"ce": [0.0, 0.5]}},
        },
    ),
    "cnn-patience-1": ("cnn", {"epochs": 4, "batch_size": 16, "patience": 1, "lr": 0.05}),
    "rotten-tomatoes-pqrnn": ("pqrnn", {"epochs": 2, "batch_size": 32}),
}


def _train(kind: str, cfg: TrainConfig, ckpt: Path | None, real: bool = False) -> tuple[Any, Any]:
    texts, signals, labels = _data(400 if real else 300, real)
    seed_everything(0)
    student = build_student(kind, TINY[kind], NAMES)
    return student, train_student(student, texts, signals, labels, cfg, checkpoint_dir=ckpt)


def _crash_after(steps: int) -> list[tuple[Any, Any]]:
    """Make `slow_step` raise after `steps` calls, wherever the loop calls it from."""
    from tinystudent.train import engine, loop

    calls = {"n": 0}

    def hook() -> None:
        calls["n"] += 1
        if calls["n"] > steps:
            raise Crash

    saved = [(m, m.slow_step) for m in (engine, loop) if hasattr(m, "slow_step")]
    for m, _ in saved:
        m.slow_step = hook  # type: ignore[attr-defined]
    return saved


def _line(name: str, student: Any, result: Any) -> str:
    log = json.dumps(result.history, sort_keys=True)
    return (
        f"{name}: weights {_sha(student.state_dict())} log "
        f"{hashlib.sha256(log.encode()).hexdigest()[:16]} best_epoch {result.best_epoch} "
        f"epochs {len(result.history)} history {log}"
    )


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--ddp", action="store_true", help="also a 2-rank gloo run")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    for name, (kind, options) in CASES.items():
        real = name.startswith("rotten-tomatoes")
        student, result = _train(kind, TrainConfig(**options), None, real)
        print(_line(name, student, result), flush=True)
    kind, options = CASES["bag-objectives-schedule"]
    with tempfile.TemporaryDirectory() as tmp:
        saved = _crash_after(13)  # 9 steps per epoch (270 rows / 32): dies inside epoch 2
        try:
            _train(kind, TrainConfig(**options), Path(tmp))
        except Crash:
            pass
        finally:
            for m, fn in saved:
                m.slow_step = fn  # type: ignore[attr-defined]
        student, result = _train(kind, TrainConfig(**options), Path(tmp))
        print(_line(f"resumed(from {result.resumed_from_epoch})", student, result), flush=True)
    if args.ddp:
        from tinystudent.scale import train_student_ddp

        texts, signals, labels = _data()
        cfg = TrainConfig(**CASES["pqrnn-kd-ce"][1])
        opts = {**TINY["pqrnn"], "dropout": 0.0, "zoneout": 0.0}
        with tempfile.TemporaryDirectory() as tmp:
            seed_everything(0)
            st, res = train_student_ddp(2, "pqrnn", opts, NAMES, texts, signals, labels, cfg, tmp)
            print(_line("ddp-2", st, res), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
