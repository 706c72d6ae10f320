"""How often does a teacher agree with itself? The ceiling on student-teacher agreement.

A student is judged by how often it agrees with its teacher on the test texts. But a teacher
fitted on k examples per class is itself a draw: refit it on the very same k-shot set with
another training seed and it changes its mind on some test texts. This refits the teacher of
a finished run (same recipe, same gold set, same code) with other seeds and reports, per seed,
its accuracy and its agreement with the run's teacher and with the run's student, so the
student's agreement can be read against the teacher's own.

    python bench/teacher_agreement.py runs/demo --seeds 1 2

writes bench/results/teacher_agreement.json (`--out` to change). One torch thread by default
(`--threads`): the refits are then the same on any machine.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import RESULTS, environment, mean_std  # noqa: E402


def agreement(a: np.ndarray, b: np.ndarray) -> float:
    """Share of rows whose most likely class is the same."""
    return float((a.argmax(1) == b.argmax(1)).mean())


def refit(run: Path, seed: int) -> tuple[np.ndarray, dict[str, Any]]:
    """The run's teacher fitted again on its own gold set with `seed`; test probabilities."""
    from tinystudent.data import Split
    from tinystudent.io import read_json
    from tinystudent.recipe import load_recipe
    from tinystudent.seed import seed_everything
    from tinystudent.teachers.registry import FitRequest, kind_of

    recipe = load_recipe(run / "recipe.yaml")
    split = Split.from_json(read_json(run / "data" / "split.json"))
    kind = kind_of(recipe.teacher)
    seed_everything(seed)
    with tempfile.TemporaryDirectory(prefix="tinystudent-refit-") as tmp:
        request = FitRequest(
            split.label_names,
            recipe.teacher,
            split.train_texts,
            split.train_labels,
            seed,
            Path(tmp) / "cache",
            Path(tmp) / "ckpt",
        )
        teacher, _ = kind.fit(request)
        probs = np.asarray(teacher.predict_proba(split.test_texts))
    return probs, {"teacher": kind.name, "k": recipe.data.k, "dataset": recipe.data.dataset}


def measure(run: Path, seeds: list[int]) -> dict[str, Any]:
    from tinystudent.errors import TinyStudentError
    from tinystudent.io import read_json

    if not (run / "predictions.json").exists():
        raise TinyStudentError(f"{run}: no predictions.json (is it a finished run directory?)")
    pred = read_json(run / "predictions.json")
    teacher, student = np.asarray(pred["teacher_probs"]), np.asarray(pred["student_probs"])
    labels = np.asarray(pred["labels"])
    rows, facts = [], {}
    for seed in seeds:
        probs, facts = refit(run, seed)
        rows.append(
            {
                "seed": seed,
                "accuracy": float((probs.argmax(1) == labels).mean()),
                "agreement_with_run_teacher": agreement(probs, teacher),
                "agreement_with_run_student": agreement(probs, student),
            }
        )
        print(rows[-1], flush=True)
    return {
        **facts,
        "run": str(run),
        "run_teacher_accuracy": float((teacher.argmax(1) == labels).mean()),
        "run_student_accuracy": float((student.argmax(1) == labels).mean()),
        "student_agreement_with_run_teacher": agreement(student, teacher),
        "refits": rows,
        "teacher_self_agreement": mean_std([r["agreement_with_run_teacher"] for r in rows]),
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run", type=Path, help="a finished run directory (e.g. runs/demo)")
    ap.add_argument("--seeds", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", type=Path, default=RESULTS / "teacher_agreement.json")
    args = ap.parse_args(argv)

    import torch

    from tinystudent.io import write_json

    torch.set_num_threads(args.threads)
    doc = measure(args.run, args.seeds)
    doc["threads"] = args.threads
    doc["command"] = "python bench/teacher_agreement.py " + " ".join(sys.argv[1:])
    doc["environment"] = environment()
    write_json(args.out, doc)
    print(
        f"teacher agrees with itself on {doc['teacher_self_agreement']['mean']:.3f} of the test "
        f"texts; its student on {doc['student_agreement_with_run_teacher']:.3f} -> {args.out}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
