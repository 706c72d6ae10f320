"""What do rationales buy a tiny generative student? SmolLM2-135M on gsm_symbolic, four ways.

On the same fixed held-out problems (200 by default, a seed no training item uses):
- untrained: the pretrained student asked in the answer format (zero-shot);
- answer: fine-tuned on question -> answer;
- cot: fine-tuned on question -> rationale, then `#### answer` (Fine-tune-CoT);
- multitask: `[label]` question -> answer and `[rationale]` question -> rationale, loss
  `w * label + (1 - w) * rationale`; inference runs only `[label]` (distilling step-by-step).
Every trained student gets the same budget: the same training questions, steps, batch size,
learning rate and maximum length (the rationales are those gsm_symbolic carries). Reported:
exact match by gsm_symbolic's scorer, mean tokens generated per answer, seconds per answer
(batched greedy decoding, one thread), training time and losses.

Sized for a 2-core CPU shared with other jobs. Probes on one thread of a busy machine (load
~5): a full fine-tuning step of 4 questions took ~9 s (answer), ~13 s (cot) and ~17 s
(multitask: two forwards); greedy decoding of 32 problems cost ~14 s of prompt prefill plus
~0.25 s per generated token. So the defaults (40 steps x 4 questions; 200 problems; 12 answer
tokens, 160 cot tokens) take ~26 min of training and ~11 min of evaluation: about 40 minutes.
`--train-minutes` stops a mode's training early if the machine is much slower (the JSON says
so). A finished mode is kept in `bench/results/rationale.partial.json`, so an interrupted run
resumes at the next mode.

    python bench/rationale.py --quick   # smoke test: a few minutes, tiny sizes
    python bench/rationale.py           # the README table (~40 min on one thread)
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import RESULTS, environment  # noqa: E402

from tinystudent.io import read_json, write_json  # noqa: E402
from tinystudent.rationale.data import gsm_scorer, gsm_split  # noqa: E402
from tinystudent.rationale.evaluate import EvalResult, evaluate_student  # noqa: E402
from tinystudent.rationale.format import Mode  # noqa: E402
from tinystudent.rationale.student import load_student  # noqa: E402
from tinystudent.rationale.train import RationaleTrainConfig, train_student  # noqa: E402

MODES = ["answer", "cot", "multitask"]
QUICK = {
    "num_test": 12,
    "num_examples": 8,
    "steps": 3,
    "batch_size": 2,
    "max_seq_len": 256,
    "answer_tokens": 8,
    "cot_tokens": 32,
}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="tiny sizes (minutes): a smoke test")
    ap.add_argument("--student", default="smollm2-135m", help="smollm2-135m or a local folder")
    ap.add_argument("--num-test", type=int, default=200, help="held-out problems")
    ap.add_argument("--num-examples", type=int, default=160, help="training questions (budget)")
    ap.add_argument("--steps", type=int, default=40)
    ap.add_argument("--batch-size", type=int, default=4, help="questions per step")
    ap.add_argument("--lr", type=float, default=2e-4)
    ap.add_argument("--max-seq-len", type=int, default=288, help="longer examples are dropped")
    ap.add_argument("--label-weight", type=float, default=0.5, help="multitask w")
    ap.add_argument("--answer-tokens", type=int, default=12, help="generation cap: answer modes")
    ap.add_argument("--cot-tokens", type=int, default=160, help="generation cap: cot")
    ap.add_argument("--eval-batch", type=int, default=32, help="problems per generate call")
    ap.add_argument(
        "--train-minutes",
        type=float,
        default=12.0,
        help="safety stop per mode (the JSON says if it fired)",
    )
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=None, help="result JSON (default bench/results/...)")
    args = ap.parse_args(argv)
    if args.quick:
        for k, v in QUICK.items():
            setattr(args, k, v)
    return args


def summarise(res: EvalResult, n_examples: int = 3) -> dict[str, Any]:
    out = res.summary()
    out["examples"] = [
        {k: p[k] for k in ("id", "gold", "predicted", "correct", "output")}
        for p in res.predictions[:n_examples]
    ]
    return out


def main(argv: list[str] | None = None) -> int:
    import torch

    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    name = "rationale-quick" if args.quick else "rationale"
    out = Path(args.out) if args.out else RESULTS / f"{name}.json"
    partial_path = out.with_suffix(".partial.json")
    t_start = time.perf_counter()

    train, test = gsm_split(args.num_examples, args.num_test, args.seed)
    scorer = gsm_scorer()
    budget = {
        "training_questions": len(train),
        "steps": args.steps,
        "batch_size": args.batch_size,
        "examples_seen": args.steps * args.batch_size,
        "epochs": round(args.steps * args.batch_size / len(train), 2),
        "lr": args.lr,
        "max_seq_len": args.max_seq_len,
        "label_weight": args.label_weight,
        "full_fine_tuning": True,
        "threads": args.threads,
        "answer_max_new_tokens": args.answer_tokens,
        "cot_max_new_tokens": args.cot_tokens,
        "rationales": "gsm_symbolic's own step-by-step solutions (dataset-carried)",
    }
    signature = {
        "budget": budget,
        "student": args.student,
        "test": [e.id for e in test],
        "seed": args.seed,
    }
    partial: dict[str, Any] = {}
    if partial_path.is_file():
        saved = read_json(partial_path)
        if saved.get("signature") == signature:
            partial = saved["results"]
            print(f"resuming: {sorted(partial)} already done")

    def keep(mode: str, result: dict[str, Any]) -> None:
        partial[mode] = result
        write_json(partial_path, {"signature": signature, "results": partial})

    if "untrained" not in partial:
        model, tok = load_student(args.student)
        print(f"untrained student on {len(test)} held-out problems", flush=True)
        res = evaluate_student(
            model,
            tok,
            test,
            Mode.answer,
            scorer,
            args.answer_tokens,
            args.eval_batch,
            progress=True,
        )
        keep("untrained", summarise(res))
        del model

    for mode_name in MODES:
        if mode_name in partial:
            continue
        mode = Mode(mode_name)
        model, tok = load_student(args.student)
        cfg = RationaleTrainConfig(
            mode=mode,
            num_examples=len(train),
            steps=args.steps,
            batch_size=args.batch_size,
            lr=args.lr,
            max_seq_len=args.max_seq_len,
            label_weight=args.label_weight,
            checkpoint_every=0,
            max_minutes=args.train_minutes,
            seed=args.seed,
        )
        model, tr = train_student(model, tok, train, cfg, progress=True)
        cap = args.cot_tokens if mode is Mode.cot else args.answer_tokens
        res = evaluate_student(model, tok, test, mode, scorer, cap, args.eval_batch, progress=True)
        result = summarise(res)
        result["train"] = {
            "steps": tr.steps,
            "seconds": round(tr.seconds, 1),
            "seconds_per_step": round(tr.seconds / max(1, tr.steps), 2),
            "stopped_by_time": tr.stopped_by_time,
            "examples_used": tr.examples,
            "dropped_too_long": tr.dropped_too_long,
            "first_loss": tr.losses[0] if tr.losses else None,
            "last5_loss": sum(tr.losses[-5:]) / max(1, len(tr.losses[-5:])),
            "last5_task_losses": {
                k: sum(v[-5:]) / len(v[-5:]) for k, v in tr.task_losses.items() if v
            },
        }
        keep(mode_name, result)
        print(
            f"{mode_name}: exact match {res.accuracy:.3f}, {res.mean_new_tokens:.1f} tokens, "
            f"{res.seconds_per_answer:.3f} s/answer, trained {tr.steps} steps in "
            f"{tr.seconds:.0f} s",
            flush=True,
        )
        del model

    doc = {
        "task": "gsm_symbolic (reasoning-gym 0.1.25), exact match by the dataset's scorer",
        "student": args.student,
        "test_size": len(test),
        "budget": budget,
        "results": {k: partial[k] for k in ["untrained", *MODES]},
        "seconds": round(time.perf_counter() - t_start, 1),
        "quick": args.quick,
        "environment": environment(),
    }
    doc["environment"]["versions"]["reasoning-gym"] = _version("reasoning-gym")
    doc["environment"]["versions"]["peft"] = _version("peft")
    write_json(out, doc)
    partial_path.unlink(missing_ok=True)
    print(f"wrote {out} ({doc['seconds'] / 60:.1f} min this run)")
    return 0


def _version(pkg: str) -> str | None:
    from importlib import metadata

    try:
        return metadata.version(pkg)
    except metadata.PackageNotFoundError:
        return None


if __name__ == "__main__":
    raise SystemExit(main())
