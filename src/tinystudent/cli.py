"""Command line: a table of verbs to functions. `tinystudent --help` lists them all."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from tinystudent.errors import RecipeError, TinyStudentError

if TYPE_CHECKING:
    from pydantic import BaseModel

    from tinystudent.recipe import Recipe

M = TypeVar("M", bound="BaseModel")


def _print_report(out: Path) -> None:
    print((out / "report.md").read_text(encoding="utf-8"))
    print(
        f"artifacts: {out}/ (report.json, report.md, report.html, predictions.json, teacher/, "
        "student/, cache/)"
    )


#: recipe values `run` and `check` take as flags (see tinystudent.overrides.FIELDS)
OVERRIDES: list[tuple[str, Any, str]] = [
    ("data", str, "a data file (.csv/.tsv/.jsonl/.parquet) or a built-in dataset name"),
    ("text_column", str, "the file's text column (data.text_column)"),
    ("label_column", str, "the file's label column (data.label_column)"),
    ("on_conflict", str, "a text given twice with two labels: error, drop or majority"),
    ("k", int, "labeled examples per class (data.k)"),
    ("seed", int, "seed of the k-shot sample (data.seed)"),
    ("test_size", lambda v: float(v) if "." in v else int(v), "a fraction or a count"),
    ("max_pool", int, "cap on unlabeled pool texts (data.max_pool)"),
    ("teacher", str, "teacher model: a catalogue name, local folder or hub id"),
    ("teacher_epochs", int, "teacher fine-tuning epochs (teacher.epochs)"),
    ("student", str, "student kind: pqrnn, bag, cnn, bilstm, transformer"),
    ("epochs", int, "student training epochs (train.epochs)"),
    ("name", str, "run name (default: the recipe's, or the data file's stem)"),
    ("cache_dir", str, "soft-label cache shared between runs (label.cache_dir)"),
    ("nproc", int, "train the student on N processes (torch DDP)"),
    ("threads", int, "torch threads for the whole run, pinned (recipe `threads`)"),
    (
        "device",
        str,
        "cpu (default), cuda, cuda:N or auto: where teacher, generator and "
        "student training run (recipe `device`)",
    ),
]


def _add_overrides(p: argparse.ArgumentParser) -> None:
    p.add_argument("recipe", nargs="?", help="recipe YAML (see recipes/); optional with --data")
    group = p.add_argument_group("recipe values (override the recipe's, or replace it)")
    for name, kind, help_text in OVERRIDES:
        group.add_argument("--" + name.replace("_", "-"), dest=name, type=kind, help=help_text)
    group.add_argument(
        "--ray",
        nargs="?",
        const="",
        metavar="ADDRESS",
        help="label on Ray (a local cluster, or ADDRESS / $RAY_ADDRESS)",
    )


def _recipe_from_args(args: argparse.Namespace) -> Recipe:
    """The recipe file (if any) with the flags written in, validated as one recipe."""
    from tinystudent.overrides import apply_overrides
    from tinystudent.recipe import read_yaml

    if args.recipe is None and args.data is None:
        raise RecipeError(f"{args.verb}: give a recipe YAML, or --data FILE to use the defaults")
    values = {name: getattr(args, name) for name, _, _ in OVERRIDES}
    if values["threads"] is None:  # the global --torch-threads pins a run as --threads does
        values["threads"] = getattr(args, "torch_threads", None)
    if args.ray is not None:
        values.update(label_backend="ray", ray_address=args.ray or None)
    data = read_yaml(args.recipe) if args.recipe else None
    return apply_overrides(data, values, args.recipe or "command line")


def _default_out(args: argparse.Namespace, recipe: Recipe) -> Path:
    """--out; else the run directory a `recipe.yaml` was saved in (to repeat that run in
    place); else runs/<recipe name>."""
    if args.out:
        return Path(args.out)
    if args.recipe and Path(args.recipe).name == "recipe.yaml":
        here = Path(args.recipe).parent
        if (here / "stages.json").exists():
            return here
    return Path("runs") / recipe.name


def cmd_run(args: argparse.Namespace) -> int:
    """Run (or resume) the pipeline of a recipe, or of --data FILE with the defaults, into an
    output directory. Flags override the recipe's values; the run directory keeps the fully
    resolved recipe.yaml, so `tinystudent run runs/x/recipe.yaml` repeats the run."""
    from tinystudent.devices import resolve_device
    from tinystudent.pipeline import run

    recipe = _recipe_from_args(args)
    resolve_device(recipe.device)  # `cuda` on a machine without one: one line, nothing run
    out = _default_out(args, recipe)
    run(recipe, out)
    _print_report(out)
    return 0


def cmd_check(args: argparse.Namespace) -> int:
    """Validate a recipe of any kind (pipeline, bench, embed, rationale) without running it,
    and print it resolved, every default filled in, as YAML. Flags are checked as `run` takes
    them; a bad value is a one-line error and exit code 2."""
    from tinystudent.check import article, check_file, detect_kind, resolved_yaml
    from tinystudent.recipe import read_yaml

    flags = [n for n, _, _ in OVERRIDES if getattr(args, n) is not None]
    flags += ["ray"] * (args.ray is not None)
    model: BaseModel
    if args.recipe is None or flags:
        kind = args.kind or (detect_kind(read_yaml(args.recipe))[0] if args.recipe else None)
        if kind not in (None, "pipeline"):
            flag = "--" + flags[0].replace("_", "-")
            raise RecipeError(
                f"check: {flag} applies to pipeline recipes, not {article(kind)} {kind} recipe"
            )
        kind, model = "pipeline", _recipe_from_args(args)
    else:
        kind, model = check_file(args.recipe, args.kind)
    where = args.recipe or "command line"
    print(
        resolved_yaml(model, f"{where}: a valid {kind} recipe, every default filled in"),
        end="",
    )
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    """The embedded default: Rotten Tomatoes, k = 64, a fine-tuned MiniLM-L6 -> a bag student."""
    from tinystudent.pipeline import run
    from tinystudent.recipe import default_recipe

    out = Path(args.out)
    recipe = default_recipe()
    if args.torch_threads:  # another count than the recipe's pinned 2: other last-bit figures
        recipe = recipe.model_copy(update={"threads": args.torch_threads})
    run(recipe, out)
    _print_report(out)
    return 0


def _read_inputs(args: argparse.Namespace) -> list[str]:
    if args.file:
        path = Path(args.file)
        if not path.exists():
            raise TinyStudentError(f"{path}: no such file")
        lines = path.read_text(encoding="utf-8").splitlines()
    elif args.texts:
        lines = list(args.texts)
    elif not sys.stdin.isatty():
        lines = sys.stdin.read().splitlines()
    else:
        raise TinyStudentError("predict: give texts as arguments, --file FILE, or on stdin")
    texts = [t for t in (line.strip() for line in lines) if t]
    if not texts:
        raise TinyStudentError("predict: no non-empty text to classify")
    return texts


def cmd_report(args: argparse.Namespace) -> int:
    """(Re)build RUN_DIR/report.html, a self-contained page (tables, confusion matrices,
    calibration, training history, the texts student and teacher disagree on most), from the
    run's report.json and predictions.json; no model is loaded."""
    from tinystudent.evaluate.run_page import write_report_html

    print(f"wrote {write_report_html(args.run_dir, top=args.top)}")
    return 0


def cmd_predict(args: argparse.Namespace) -> int:
    """Classify texts with a saved student (a run's student/ directory)."""
    import json

    from tinystudent.students import load_student

    model_dir = Path(args.model_dir)
    if (model_dir / "student").is_dir() and not (model_dir / "student.json").exists():
        model_dir = model_dir / "student"  # accept a run directory too
    student = load_student(model_dir)
    texts = _read_inputs(args)
    probs = student.predict_proba(texts)
    if student.multi_label:  # label sets: every label over its threshold
        sets = student.predict_labels(texts)
        for text, p, labels in zip(texts, probs, sets):
            if args.json:
                scores = {n: round(float(v), 6) for n, v in zip(student.label_names, p)}
                print(json.dumps({"text": text, "labels": labels, "probs": scores}))
            else:
                print(f"{','.join(labels) or '-'}\t{text}")
        return 0
    for text, p in zip(texts, probs):
        best = int(p.argmax())
        if args.json:
            scores = {n: round(float(v), 6) for n, v in zip(student.label_names, p)}
            print(json.dumps({"text": text, "label": student.label_names[best], "probs": scores}))
        else:
            print(f"{student.label_names[best]}\t{p[best]:.3f}\t{text}")
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    """Export a saved student to a self-contained ONNX directory (graph, optional int8 graph,
    preprocess.json, model card) that `tinystudent.inference.Predictor` runs without torch."""
    from tinystudent.export import export_student

    command = f"tinystudent export {args.model_dir} --format {args.format}"
    command += " --int8" * args.int8 + (f" --out {args.out}" if args.out else "")
    out = export_student(args.model_dir, args.out, args.format, args.int8, command=command)
    print((out / "README.md").read_text(encoding="utf-8"))
    print(f"exported: {out}/")
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    """Serve an exported model over HTTP: POST /predict, GET /health, GET /metadata."""
    from tinystudent.serve import serve

    limits = {"max_texts": args.max_texts, "max_chars": args.max_chars, "timeout_s": args.timeout}
    limits |= {"max_queue": args.max_queue, "max_connections": args.max_connections}
    limits |= {"read_timeout_s": args.read_timeout}
    serve(args.model_dir, args.host, args.port, args.threads, args.workers, **limits)
    return 0


def cmd_embed_distill(args: argparse.Namespace) -> int:
    """Distill a sentence-embedding teacher into a tiny encoder, as a recipe describes."""
    from tinystudent.embeddings import load_embed_recipe, run_embed_distill
    from tinystudent.embeddings.pipeline import summary

    recipe = with_device(load_embed_recipe(args.recipe), args.device)
    out = Path(args.out or Path("runs") / recipe.name)
    print(summary(run_embed_distill(recipe, out)))
    print(f"artifacts: {out}/ (report.json, student/, cache/)")
    return 0


def cmd_rationale(args: argparse.Namespace) -> int:
    """Rationale distillation: teach a small causal LM to answer (or reason step by step) from
    a teacher's or a dataset's rationales, then score it on held-out questions."""
    from tinystudent.rationale import load_rationale_recipe, run_rationale

    recipe = with_device(load_rationale_recipe(args.recipe), args.device)
    out = Path(args.out or Path("runs") / recipe.name)
    run_rationale(recipe, out)
    print((out / "report.md").read_text(encoding="utf-8"))
    print(f"artifacts: {out}/ (report.json, report.md, student/, predictions.jsonl)")
    return 0


def cmd_bench(args: argparse.Namespace) -> int:
    """Run (or resume) a benchmark protocol: teachers, distilled and gold-only students and
    baselines on one split, k in the protocol's ks, several seeds; writes JSON + Markdown."""
    from tinystudent.bench import load_bench, run_benchmark

    spec = with_device(load_bench(args.spec), args.device)
    if args.cache:
        spec.cache_dir = args.cache
    out = Path(args.out)
    run_benchmark(spec, out, quick=args.quick)
    print((out / f"{spec.name}.md").read_text(encoding="utf-8"))
    print(f"results: {out}/{spec.name}.json, {out}/{spec.name}.md")
    return 0


def with_device(recipe: M, device: str | None) -> M:
    """`recipe` with `--device` written in (validated as the recipe's own field), and that
    device resolved here: `cuda` on a machine without one is a one-line error, nothing run."""
    from tinystudent.devices import check_device_name, resolve_device

    if device is not None:
        recipe = recipe.model_copy(update={"device": check_device_name(device)})
    resolve_device(recipe.device)  # type: ignore[attr-defined]
    return recipe


def _add_device(p: argparse.ArgumentParser) -> None:
    p.add_argument("--device", help="cpu, cuda, cuda:N or auto (overrides the recipe's `device`)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tinystudent",
        description="Distill a large teacher into a tiny, fast student from a few labels.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages")
    parser.add_argument(
        "--torch-threads",
        type=int,
        metavar="N",
        help="torch threads for training and labeling (default: all cores; on a machine busy "
        "with other work, 1 is often several times faster)",
    )
    sub = parser.add_subparsers(dest="verb", metavar="VERB", required=True)

    verbs: list[tuple[str, Callable[[argparse.Namespace], int], str]] = [
        ("run", cmd_run, "run (or resume) the pipeline of a recipe YAML or of --data FILE"),
        ("check", cmd_check, "validate a recipe of any kind and print it with every default"),
        ("demo", cmd_demo, "distill the built-in default (Rotten Tomatoes, k=64) and report"),
        ("report", cmd_report, "(re)build a finished run's report.html"),
        ("predict", cmd_predict, "classify texts with a saved student"),
        ("bench", cmd_bench, "benchmark teachers, students and baselines (a protocol or YAML)"),
        ("embed-distill", cmd_embed_distill, "distill a sentence-embedding teacher (recipe YAML)"),
        ("rationale", cmd_rationale, "distill step-by-step rationales into a small LM (recipe)"),
        ("export", cmd_export, "export a student to ONNX (+ int8) with its preprocessing"),
        ("serve", cmd_serve, "serve an exported model over HTTP (needs the serve extra)"),
    ]
    parsers = {}
    for name, fn, help_text in verbs:
        p = sub.add_parser(name, help=help_text, description=fn.__doc__)
        p.set_defaults(func=fn)
        parsers[name] = p
    _add_overrides(parsers["run"])
    parsers["run"].add_argument("--out", help="run directory (default: runs/<recipe name>)")
    _add_overrides(parsers["check"])
    parsers["check"].add_argument(
        "--kind",
        choices=["pipeline", "bench", "embed", "rationale"],
        help="check as this kind (default: told from the recipe's sections)",
    )
    parsers["demo"].add_argument("--out", default="runs/demo", help="run directory")
    p = parsers["bench"]
    p.add_argument("spec", help="a built-in protocol (rt, bbc), a bench YAML or a recipe YAML")
    p.add_argument("--out", default="bench/results", help="results directory")
    p.add_argument("--quick", action="store_true", help="2 seeds, 1 epoch, small pool (smoke test)")
    p.add_argument("--cache", help="cache directory (default ~/.cache/tinystudent/bench)")
    _add_device(p)
    parsers["embed-distill"].add_argument("recipe", help="recipe YAML (see recipes/embed_*)")
    parsers["embed-distill"].add_argument("--out", help="run directory (default: runs/<name>)")
    _add_device(parsers["embed-distill"])
    parsers["rationale"].add_argument("recipe", help="recipe YAML (see recipes/rationale_*)")
    parsers["rationale"].add_argument("--out", help="run directory (default: runs/<name>)")
    _add_device(parsers["rationale"])
    p = parsers["report"]
    p.add_argument("run_dir", help="a finished run directory (holding report.json)")
    p.add_argument("--top", type=int, default=10, help="disagreeing texts to list (default 10)")
    p = parsers["predict"]
    p.add_argument("model_dir", help="a student directory, or a run directory holding student/")
    p.add_argument("texts", nargs="*", help="texts to classify (else --file or stdin)")
    p.add_argument("--file", help="a text file, one input per line")
    p.add_argument("--json", action="store_true", help="print one JSON object per text")
    p = parsers["export"]
    p.add_argument("model_dir", help="a student directory, or a run directory holding student/")
    p.add_argument("--format", choices=["onnx"], default="onnx", help="export format")
    p.add_argument("--int8", action="store_true", help="also write a dynamic-int8 graph")
    p.add_argument("--out", help="export directory (default: <student dir>-onnx beside it)")
    p = parsers["serve"]
    p.add_argument("model_dir", help="an export directory (from `tinystudent export`)")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default: loopback)")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--threads", type=int, default=None, help="onnxruntime threads")
    p.add_argument("--max-texts", type=int, default=256, help="texts per request")
    p.add_argument("--max-chars", type=int, default=10_000, help="characters per text")
    p.add_argument("--timeout", type=float, default=10.0, help="seconds per request")
    p.add_argument("--workers", type=int, default=1, help="server processes on one port")
    p.add_argument("--max-queue", type=int, default=4096, help="texts waiting (then 503)")
    p.add_argument("--max-connections", type=int, default=1024, help="open connections")
    p.add_argument("--read-timeout", type=float, default=10.0, help="seconds to send a request")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    if args.torch_threads is not None:
        if args.torch_threads < 1:
            print("error: --torch-threads must be at least 1", file=sys.stderr)
            return 2
        import torch

        torch.set_num_threads(args.torch_threads)
    try:
        return int(args.func(args))
    except TinyStudentError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(
            "interrupted: finished stages and cache shards are kept; rerun to resume",
            file=sys.stderr,
        )
        return 130


if __name__ == "__main__":
    sys.exit(main())
