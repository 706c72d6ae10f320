"""Command line: a table of verbs to functions. `tinystudent --help` lists them all."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Callable
from pathlib import Path

from tinystudent.errors import TinyStudentError


def _print_report(out: Path) -> None:
    print((out / "report.md").read_text(encoding="utf-8"))
    print(f"artifacts: {out}/ (report.json, report.md, teacher/, student/, cache/)")


def cmd_run(args: argparse.Namespace) -> int:
    """Run (or resume) the pipeline of a recipe into an output directory."""
    from tinystudent.pipeline import run
    from tinystudent.recipe import load_recipe

    recipe = load_recipe(args.recipe)
    out = Path(args.out or Path("runs") / recipe.name)
    run(recipe, out)
    _print_report(out)
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    """The embedded default: Rotten Tomatoes, k = 64, MiniLM-L6 teacher -> pQRNN student."""
    from tinystudent.pipeline import run
    from tinystudent.recipe import default_recipe

    out = Path(args.out)
    run(default_recipe(), out)
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
    for text, p in zip(texts, probs):
        best = int(p.argmax())
        if args.json:
            scores = {n: round(float(v), 6) for n, v in zip(student.label_names, p)}
            print(json.dumps({"text": text, "label": student.label_names[best], "probs": scores}))
        else:
            print(f"{student.label_names[best]}\t{p[best]:.3f}\t{text}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tinystudent",
        description="Distill a large teacher into a tiny, fast student from a few labels.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages")
    sub = parser.add_subparsers(dest="verb", metavar="VERB", required=True)

    verbs: list[tuple[str, Callable[[argparse.Namespace], int], str]] = [
        ("run", cmd_run, "run (or resume) the pipeline described by a recipe YAML"),
        ("demo", cmd_demo, "distill the built-in default (Rotten Tomatoes, k=64) and report"),
        ("predict", cmd_predict, "classify texts with a saved student"),
    ]
    parsers = {}
    for name, fn, help_text in verbs:
        p = sub.add_parser(name, help=help_text, description=fn.__doc__)
        p.set_defaults(func=fn)
        parsers[name] = p
    parsers["run"].add_argument("recipe", help="recipe YAML (see recipes/)")
    parsers["run"].add_argument("--out", help="run directory (default: runs/<recipe name>)")
    parsers["demo"].add_argument("--out", default="runs/demo", help="run directory")
    p = parsers["predict"]
    p.add_argument("model_dir", help="a student directory, or a run directory holding student/")
    p.add_argument("texts", nargs="*", help="texts to classify (else --file or stdin)")
    p.add_argument("--file", help="a text file, one input per line")
    p.add_argument("--json", action="store_true", help="print one JSON object per text")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
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
