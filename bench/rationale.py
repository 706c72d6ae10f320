"""What do rationales buy a tiny generative student? Per reasoning-gym task, five students.

For each task's recipe (`recipes/rationale_<task>.yaml`: the task, its difficulty options, the
truncated SmolLM2 student and the training budget) and each seed, `run_rationale` trains:
- answer: question -> answer (the baseline);
- cot: question -> rationale, then `#### answer` (Fine-tune-CoT);
- multitask: `[label]` question -> answer and `[rationale]` question -> rationale (distilling
  step-by-step); inference runs only `[label]`, as cheap as answer-only;
- pinto: question + a rationale written by a frozen, 3-shot prompted SmolLM2-135M (all 30
  layers; demonstrations from the solver) -> answer, with the counterfactual regulariser
  (PINTO); its tokens and seconds per answer include the rationalizer's generation;
- knife: a teacher reads the rationale, the answer-only student matches its hidden states
  (KNIFE); inference is answer-only;
- icl: in-context-learning distillation (Huang et al. 2022): few-shot prompts of 0-4 solved
  training questions before the question -> the labels teacher's answer, plus the LM loss on
  the demonstrations; scored 0-shot and k-shot (rows `icl_0shot`, `icl_<k>shot`, and the
  untrained student k-shot, `untrained_<k>shot`); its length cap is raised to hold k
  demonstrations (ICL_MAX_SEQ_LEN);
and scores the untrained student too (answer format). Every mode gets the same questions,
steps, batch size, learning rate and length cap; the held-out problems (a seed no training item
uses) are the same for every mode of a seed. Rationales are written by a programmatic solver:
a STAND-IN FOR A LARGE TEACHER, not an LM (see `tinystudent.rationale.solvers`).

Reported per task and mode over the seeds: exact match by the task's own scorer (mean and
sample std), mean tokens generated per answer, seconds per answer (batched greedy decoding,
one thread) and training seconds. Each run lives in `runs/bench-rationale/<task>/s<seed>/<mode>`
and `run_rationale` skips what is done there, so an interrupted bench resumes where it stopped.

    python bench/rationale.py --quick   # smoke test: tiny sizes, a few minutes
    python bench/rationale.py           # the README table (see docs/rationale.md for timing)
"""

from __future__ import annotations

import argparse
import os
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import RESULTS, ROOT, environment  # noqa: E402

from tinystudent.io import read_json, write_json  # noqa: E402
from tinystudent.rationale.pipeline import run_rationale  # noqa: E402
from tinystudent.rationale.recipe import (  # noqa: E402
    RationaleRecipe,
    load_rationale_recipe,
    parse_rationale_recipe,
)
from tinystudent.rationale.student import META  # noqa: E402

MODES = ["answer", "cot", "multitask", "pinto", "knife", "icl"]
TASKS = ["chain_sum", "letter_counting", "basic_arithmetic", "decimal_chain_sum"]
#: icl's length cap: k demonstrations come before the question (a 3-term chain_sum
#: demonstration is ~28 SmolLM2 tokens, 4 of them and the question ~140), so the recipe's cap,
#: sized for one question and its target, would drop every 4-shot prompt.
ICL_MAX_SEQ_LEN = 192
QUICK = {
    "data": {"num_train": 16, "num_test": 8},
    "student": {"num_layers": 1},
    "train": {"num_examples": 8, "steps": 2, "batch_size": 4},
    "evaluate": {"cot_max_new_tokens": 16},
}
#: --quick, mode pinto: short rationales (a 3-term chain_sum one is ~13 SmolLM2 tokens).
QUICK_PINTO = {"train": {"pinto": {"rationalizer": {"max_new_tokens": 16}}}}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tasks", nargs="+", default=TASKS, help="recipes/rationale_<task>.yaml")
    ap.add_argument("--seeds", nargs="+", type=int, default=[0, 1])
    ap.add_argument("--modes", nargs="+", default=MODES, choices=MODES)
    ap.add_argument("--quick", action="store_true", help="tiny sizes (minutes): a smoke test")
    ap.add_argument("--student", default=None, help="override student.model (a local folder)")
    ap.add_argument(
        "--rationalizer",
        default=None,
        help="mode pinto: override train.pinto.rationalizer.model (a local folder)",
    )
    ap.add_argument(
        "--set",
        dest="sets",
        action="append",
        default=[],
        metavar="MODE:KEY=VALUE",
        help="a recipe value for one mode's runs, e.g. "
        "pinto:train.pinto.rationalizer.source=configured (VALUE read as YAML; repeatable); "
        "the JSON records them",
    )
    ap.add_argument(
        "--finished-only",
        action="store_true",
        help="assemble the table from finished runs only (train nothing); the JSON lists the "
        "seeds each mode has",
    )
    ap.add_argument(
        "--steps",
        type=int,
        default=None,
        help="override train.steps (the recipe's budget); the runs live apart, in "
        "<runs>/<task>-<steps>steps, and the JSON and the table name the budget",
    )
    ap.add_argument("--progress", action="store_true", help="a training progress bar per run")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument(
        "--jobs",
        type=int,
        default=1,
        help="train up to N seeds at once, each in its own process with --threads threads "
        "(2 on a 2-core machine halves the wall time); the JSON is then assembled from the "
        "finished runs",
    )
    ap.add_argument(
        "--table",
        default=None,
        metavar="SPEC",
        help="run every entry of a table spec (bench/specs/rationale_table.yaml: the README "
        "table's runs, each with its --out) one after another; --finished-only, --jobs, "
        "--threads and --runs apply to each entry, --out names the folder of the JSONs",
    )
    ap.add_argument("--runs", default=None, help="run directories (default runs/bench-rationale)")
    ap.add_argument("--out", default=None, help="result JSON (default bench/results/...)")
    return ap.parse_args(argv)


def _merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for k, v in extra.items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def mode_recipe(
    base: RationaleRecipe,
    mode: str,
    seed: int,
    quick: bool,
    student: str | None = None,
    steps: int | None = None,
    rationalizer: str | None = None,
    sets: Sequence[str] = (),
) -> RationaleRecipe:
    """The task's recipe in `mode` with `seed` (data draw and training) and, if given, `steps`
    training steps; the untrained student is scored once per seed, in the answer run."""
    doc = base.model_dump(mode="json")
    doc["name"] = f"{base.name}-s{seed}-{mode}"
    doc = _merge(
        doc,
        {
            "data": {"seed": seed},
            "train": {"mode": mode, "seed": seed, "checkpoint_every": 0},
            # icl also scores the untrained student k-shot (does the base LM use examples?)
            "evaluate": {"baseline": mode in ("answer", "icl")},
        },
    )
    if mode != "pinto":
        doc["train"].pop("pinto", None)  # a pinto recipe's options belong to its pinto runs
    if mode != "knife":
        doc["train"].pop("knife", None)  # likewise a knife recipe's
    if mode != "icl":
        doc["train"].pop("icl", None)  # and an icl recipe's
    if mode == "icl":
        doc["train"]["max_seq_len"] = max(doc["train"]["max_seq_len"], ICL_MAX_SEQ_LEN)
    if quick:
        doc = _merge(doc, QUICK)
        if mode == "pinto":
            doc = _merge(doc, QUICK_PINTO)
    if student:
        doc["student"]["model"] = student
    if rationalizer and mode == "pinto":
        doc = _merge(doc, {"train": {"pinto": {"rationalizer": {"model": rationalizer}}}})
    for dotted, value in mode_sets(sets, mode):
        *parents, leaf = dotted.split(".")
        node = doc
        for part in parents:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ValueError(f"--set {mode}:{dotted}: {part} is not a section")
        node[leaf] = value
    if steps is not None:
        if steps < 1:
            raise ValueError(f"--steps must be a positive number of steps, got {steps}")
        doc["train"]["steps"] = steps
    return parse_rationale_recipe(doc, f"{base.name} ({mode}, seed {seed})")


def mode_sets(sets: Sequence[str], mode: str) -> list[tuple[str, Any]]:
    """The `--set MODE:KEY=VALUE` overrides that apply to `mode`'s runs, values read as YAML."""
    out = []
    for item in sets:
        target, sep, assignment = item.partition(":")
        key, eq, raw = assignment.partition("=")
        if not sep or not eq or not key or target not in MODES:
            raise ValueError(f"--set {item!r}: expected MODE:KEY=VALUE with MODE one of {MODES}")
        if target == mode:
            out.append((key, yaml.safe_load(raw)))
    return out


def _stats(values: list[float]) -> dict[str, Any]:
    return {
        "mean": statistics.fmean(values),
        "std": statistics.stdev(values) if len(values) > 1 else 0.0,
        "per_seed": values,
    }


def aggregate(reports: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    """Per mode over seeds: exact match (mean, std), tokens and seconds per answer, training s."""
    out: dict[str, Any] = {}
    answer_runs = reports.get("answer", [])
    untrained = [r["untrained"] for r in answer_runs if r.get("untrained")]
    if untrained:
        out["untrained"] = {
            "accuracy": _stats([u["accuracy"] for u in untrained]),
            "mean_new_tokens": statistics.fmean(u["mean_new_tokens"] for u in untrained),
            "seconds_per_answer": statistics.fmean(u["seconds_per_answer"] for u in untrained),
            "total": untrained[0]["total"],
            "seeds": [r.get("seed") for r in answer_runs if r.get("untrained")],
        }
    for mode, runs in reports.items():
        if not runs:
            continue
        if mode == "icl":
            out.update(_icl_rows(runs))
            continue
        out[mode] = _trained_row([r["student_result"] for r in runs], runs)
        oracle = [o for r in runs if (o := (r.get("knife") or {}).get("teacher_oracle"))]
        if oracle:  # the teacher had the gold rationale in its input: an oracle-input figure
            out[mode]["teacher_oracle_accuracy"] = _stats([o["accuracy"] for o in oracle])
    return out


def _trained_row(res: list[dict[str, Any]], runs: list[dict[str, Any]]) -> dict[str, Any]:
    """One trained student's row over seeds: `res` are its scores, `runs` the reports."""
    return {
        "accuracy": _stats([x["accuracy"] for x in res]),
        "mean_new_tokens": statistics.fmean(x["mean_new_tokens"] for x in res),
        "seconds_per_answer": statistics.fmean(x["seconds_per_answer"] for x in res),
        "total": res[0]["total"],
        "seeds": [r.get("seed") for r in runs],
        "train_seconds": statistics.fmean(r["train"]["seconds"] for r in runs),
        "train_steps": runs[0]["train"]["steps"],
        "last_loss": [r["train"]["last_loss"] for r in runs],
    }


def _icl_rows(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """icl's rows: the trained student 0-shot and k-shot, then the untrained student k-shot
    (no training: no steps or training seconds)."""
    out = {
        name: _trained_row([r["icl"]["results"][name] for r in runs], runs)
        for name in runs[0]["icl"]["results"]
    }
    for name in (k for k in runs[0]["icl"] if k.startswith("untrained_")):
        res = [r["icl"][name] for r in runs]
        out[name] = {
            "accuracy": _stats([x["accuracy"] for x in res]),
            "mean_new_tokens": statistics.fmean(x["mean_new_tokens"] for x in res),
            "seconds_per_answer": statistics.fmean(x["seconds_per_answer"] for x in res),
            "total": res[0]["total"],
            "seeds": [r.get("seed") for r in runs],
        }
    return out


def finished_report(recipe: RationaleRecipe, run_dir: Path) -> dict[str, Any] | None:
    """The report of a finished run of exactly this recipe (the saved student records the
    recipe it was trained from), so assembling the table after per-seed runs costs nothing."""
    meta, report = run_dir / "student" / META, run_dir / "report.json"
    if not (meta.is_file() and report.is_file()):
        return None
    if read_json(meta).get("recipe") != recipe.model_dump(mode="json"):
        return None
    if report.stat().st_mtime < meta.stat().st_mtime:
        return None
    return dict(read_json(report))


def task_dir(runs: Path, task: str, steps: int | None) -> Path:
    """Where a task's runs live: a `--steps` budget gets its own folder, so runs of different
    budgets never overwrite or stand in for each other."""
    return runs / (task if steps is None else f"{task}-{steps}steps")


def run_task(task: str, args: argparse.Namespace, runs: Path) -> dict[str, Any]:
    path = ROOT / "recipes" / f"rationale_{task}.yaml"
    base = load_rationale_recipe(path)
    reports: dict[str, list[dict[str, Any]]] = {m: [] for m in args.modes}
    here = task_dir(runs, task, args.steps)
    for seed in args.seeds:
        for mode in args.modes:
            recipe = mode_recipe(
                base,
                mode,
                seed,
                args.quick,
                args.student,
                args.steps,
                args.rationalizer,
                args.sets,
            )
            t0 = time.perf_counter()
            run_dir = here / f"s{seed}" / mode
            rep = finished_report(recipe, run_dir)
            if rep is None and args.finished_only:
                print(f"{task} seed {seed} {mode}: not finished, left out", flush=True)
                continue
            rep = rep or run_rationale(recipe, run_dir, args.progress)
            rep["seed"] = seed
            reports[mode].append(rep)
            shown = {mode: rep["student_result"]}
            if rep.get("icl"):
                shown = {**rep["icl"]["results"]}
                shown.update({k: v for k, v in rep["icl"].items() if k.startswith("untrained_")})
            for name, r in shown.items():
                print(
                    f"{task} seed {seed} {name}: exact match {r['accuracy']:.3f} "
                    f"({r['correct']}/{r['total']}), {r['mean_new_tokens']:.1f} tokens, "
                    f"{r['seconds_per_answer']:.3f} s/answer ({time.perf_counter() - t0:.0f} s)",
                    flush=True,
                )
    first = mode_recipe(base, args.modes[0], args.seeds[0], args.quick, args.student, args.steps)
    return {
        "recipe": str(path.relative_to(ROOT)),
        "task_options": first.data.task_options,
        "student": {"model": first.student.model, "num_layers": first.student.num_layers},
        "budget": first.train.model_dump(mode="json", exclude={"mode", "seed"}),
        "evaluate": first.evaluate.model_dump(mode="json", exclude={"baseline"}),
        "rationales": next(
            (
                rs[0]["rationales"].get("source")
                for m, rs in reports.items()
                if rs and m != "answer"
            ),
            None,
        ),
        "results": aggregate(reports),
        "example_output": _example(here / f"s{args.seeds[0]}"),
    }


def _example(seed_dir: Path) -> dict[str, str]:
    """The first held-out prediction of each mode: what the students actually write."""
    import json

    out: dict[str, str] = {}
    if not seed_dir.is_dir():
        return out
    for mode_dir in sorted(p for p in seed_dir.iterdir() if p.is_dir()):
        pred = mode_dir / "predictions.jsonl"
        if pred.is_file():
            row = json.loads(pred.read_text(encoding="utf-8").splitlines()[0])
            out[mode_dir.name] = f"{row['output'].strip()}  (gold {row['gold']})"
    return out


def table_entries(spec: Path) -> list[tuple[str, list[str]]]:
    """A table spec's runs, in order: (result file name, that run's arguments)."""
    doc = yaml.safe_load(spec.read_text(encoding="utf-8")) or {}
    entries = []
    for i, e in enumerate(doc.get("runs") or []):
        if not isinstance(e, dict) or not e.get("out") or not isinstance(e.get("args"), str):
            raise SystemExit(f"{spec}: runs[{i}] needs `out` (a file name) and `args` (a string)")
        entries.append((str(e["out"]), shlex.split(e["args"])))
    if not entries:
        raise SystemExit(f"{spec}: no runs")
    return entries


def run_table(args: argparse.Namespace) -> int:
    """Each entry of the spec as its own bench run, writing bench/results/<out>."""
    shared = ["--threads", str(args.threads), "--jobs", str(args.jobs)]
    shared += ["--runs", args.runs] if args.runs else []
    shared += ["--finished-only"] if args.finished_only else []
    folder = Path(args.out) if args.out else RESULTS
    for out, entry_args in table_entries(Path(args.table)):
        print(f"== {out}: {' '.join(entry_args)}", flush=True)
        main([*entry_args, *shared, "--out", str(folder / out)])
    return 0


def run_seeds_in_parallel(argv: list[str], args: argparse.Namespace) -> None:
    """Train each seed in a child process (at most --jobs at once); the caller then assembles
    the finished runs. A child gets this command's arguments with its own --seeds, --jobs 1
    and a scratch --out appended (argparse keeps an option's last value)."""
    pending = list(args.seeds)
    running: list[tuple[int, subprocess.Popen[bytes]]] = []
    scratch = Path(tempfile.mkdtemp(prefix="rationale-seeds-"))
    failed = []
    while pending or running:
        while pending and len(running) < args.jobs:
            seed = pending.pop(0)
            child = [sys.executable, str(Path(__file__).resolve()), *argv, "--seeds", str(seed)]
            child += ["--jobs", "1", "--out", str(scratch / f"s{seed}.json")]
            print(f"seed {seed}: training in process {len(running) + 1}", flush=True)
            running.append((seed, subprocess.Popen(child)))
        time.sleep(1)
        for seed, proc in list(running):
            if proc.poll() is not None:
                running.remove((seed, proc))
                if proc.returncode != 0:
                    failed.append(seed)
    shutil.rmtree(scratch, ignore_errors=True)  # the runs hold the results, not these files
    if failed:
        raise SystemExit(f"seeds {failed} failed (their runs resume when rerun)")


def main(argv: list[str] | None = None) -> int:
    import torch

    raw = list(sys.argv[1:] if argv is None else argv)
    args = parse_args(raw)
    if args.jobs < 1:
        raise SystemExit(f"--jobs must be at least 1, got {args.jobs}")
    if args.table:
        return run_table(args)
    torch.set_num_threads(args.threads)
    name = "rationale-quick" if args.quick else "rationale"
    out = Path(args.out) if args.out else RESULTS / f"{name}.json"
    runs = Path(args.runs) if args.runs else ROOT / "runs" / f"bench-{name}"
    t_start = time.perf_counter()
    if args.jobs > 1 and len(args.seeds) > 1 and not args.finished_only:
        run_seeds_in_parallel(raw, args)
        args.finished_only = True
    tasks = {task: run_task(task, args, runs) for task in args.tasks}
    doc = {
        "what": "rationale distillation into a truncated SmolLM2 on reasoning-gym tasks",
        "rationale_teacher": "programmatic solver (a stand-in for a large teacher LM)",
        "seeds": args.seeds,
        "threads": args.threads,
        "steps_override": args.steps,
        "overrides": list(args.sets),
        "tasks": tasks,
        "seconds": round(time.perf_counter() - t_start, 1),
        "quick": args.quick,
        "environment": environment(),
    }
    # What reproduces this file, also when --table or a parent process ran it.
    command = shlex.join(["python", "bench/rationale.py", *raw]).replace(f"{ROOT}/", "")
    doc["environment"]["command"] = command
    write_json(out, doc)
    print(f"wrote {out} ({doc['seconds'] / 60:.1f} min this run)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
