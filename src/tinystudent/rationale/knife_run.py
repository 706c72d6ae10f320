"""Mode knife inside `run_rationale`: the teacher as a resumable stage, the student's training
against it, and the teacher's oracle-input score for the report.

Stages (in `stages.json` beside the others): `teacher` (`teacher/`, safetensors via
`save_student`; its key covers the data, rationales, base model and the teacher's own budget,
not the student-only loss weights, so retuning those reuses the teacher) and
`teacher_oracle` (`teacher_oracle.json`: the teacher scored with the gold rationale in its
input, an upper reference the student never gets at test time).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from tinystudent.checkpoint import Checkpoint, fingerprint
from tinystudent.devices import resolve_device
from tinystudent.errors import DataError
from tinystudent.io import read_json, recipe_key
from tinystudent.rationale.data import Example, Scorer
from tinystudent.rationale.format import Mode, extract_answer
from tinystudent.rationale.knife import (
    KnifeFitResult,
    teacher_greedy,
    train_knife_student,
    train_teacher,
)
from tinystudent.rationale.knife_spec import KnifeSpec
from tinystudent.rationale.recipe import RationaleRecipe, RationaleSourceKind
from tinystudent.rationale.solvers import SolverRationales
from tinystudent.rationale.sources import split_solution
from tinystudent.rationale.student import META, load_student, save_student
from tinystudent.stages import Stages

log = logging.getLogger(__name__)


def _spec(recipe: RationaleRecipe) -> KnifeSpec:
    return recipe.train.knife or KnifeSpec()


def teacher_layers(recipe: RationaleRecipe) -> int | None:
    return _spec(recipe).teacher_layers or recipe.student.num_layers


def teacher_key(recipe: RationaleRecipe, examples: list[Example]) -> str:
    """What the teacher depends on: data, rationales, base model, its own budget."""
    cfg, spec = recipe.train, _spec(recipe)
    budget = cfg.model_dump(
        mode="json", exclude={"max_minutes", "checkpoint_every", "knife", "steps", "lr", "mode"}
    )
    budget |= {
        "steps": spec.teacher_steps or cfg.steps,
        "lr": spec.teacher_lr or cfg.lr,
        "layers": teacher_layers(recipe),
    }
    payload = {
        "data": recipe.data,
        "rationales": recipe.rationales,
        "model": recipe.student.model,
        "teacher": budget,
    }
    return fingerprint(recipe_key(payload), [e.to_json() for e in examples])


def knife_teacher(
    recipe: RationaleRecipe, examples: list[Example], stages: Stages, progress: bool
) -> tuple[Any, dict[str, Any]]:
    """The trained teacher (on the run's device) and its training info: loaded from `teacher/`
    when that stage ran with this key, else trained (resuming `teacher_checkpoint/`) and saved."""
    key, target = teacher_key(recipe, examples), stages.root / "teacher"
    device = resolve_device(recipe.device)
    if stages.is_done("teacher", key, target / META):
        if stages.ran.get("teacher") != "ran":  # trained earlier in this run: say so
            stages.mark("teacher", key, ran=False)
        model, _ = load_student(str(target))
        return model.to(device), dict(read_json(target / META)["train"])
    model, tok = load_student(recipe.student.model, teacher_layers(recipe))
    ckpt = Checkpoint(stages.root / "teacher_checkpoint", key)
    model, result = train_teacher(model, tok, examples, recipe.train, ckpt, progress, device)
    if result.stopped_by_time:
        raise DataError(
            f"knife teacher stopped by train.max_minutes after {result.steps} steps; the "
            "checkpoint is kept: rerun to continue"
        )
    info = result.train_info()
    save_student(model.to("cpu"), tok, target, {"train": info, "role": "knife teacher"})
    stages.mark("teacher", key, ran=True)
    ckpt.clear()
    return model.to(device), info


def train_knife(
    recipe: RationaleRecipe,
    model: Any,
    tok: Any,
    examples: list[Example],
    ckpt: Checkpoint,
    stages: Stages,
    progress: bool,
) -> tuple[Any, KnifeFitResult]:
    """The `student` stage's training in mode knife: teacher first (a stage), then the student."""
    teacher, _ = knife_teacher(recipe, examples, stages, progress)
    device = resolve_device(recipe.device)
    return train_knife_student(model, tok, teacher, examples, recipe.train, ckpt, progress, device)


def oracle_rationales(recipe: RationaleRecipe, test: list[Example]) -> list[Example]:
    """Held-out examples with a gold rationale: the solver's when it writes the rationales,
    else the data's own; examples without one are left out."""
    if recipe.rationales.source is RationaleSourceKind.solver and recipe.data.task:
        cands = SolverRationales(recipe.data.task).candidates(test, recipe.data.seed)
        test = [
            Example(e.id, e.question, e.answer, split_solution(c[0])[0], e.meta)
            for e, c in zip(test, cands)
        ]
    return [e for e in test if e.rationale]


def knife_report(
    recipe: RationaleRecipe,
    examples: list[Example],
    test: list[Example],
    scorer: Scorer,
    stages: Stages,
    progress: bool,
) -> dict[str, Any]:
    """The report's `knife` section: the loss settings, the teacher's training and its
    oracle-input score (a stage of its own, `teacher_oracle.json`)."""
    spec = _spec(recipe)
    teacher, info = knife_teacher(recipe, examples, stages, progress)
    out: dict[str, Any] = {"settings": spec.model_dump(mode="json"), "teacher_train": info}
    if not spec.score_teacher:
        return out
    gold = oracle_rationales(recipe, test)
    if not gold:
        out["teacher_oracle"] = None
        log.info("knife: no held-out rationale to score the teacher with")
        return out
    ev = recipe.evaluate
    key = fingerprint(teacher_key(recipe, examples), ev.max_new_tokens, [e.to_json() for e in gold])

    def score() -> dict[str, Any]:
        tok = load_student(str(stages.root / "teacher"))[1]
        texts, counts = teacher_greedy(teacher, tok, gold, ev.max_new_tokens, ev.batch_size)
        correct = sum(bool(scorer(extract_answer(t, Mode.answer), e)) for t, e in zip(texts, gold))
        return {
            "what": "teacher with the gold rationale in its input (oracle input)",
            "accuracy": correct / len(gold),
            "correct": correct,
            "total": len(gold),
            "mean_new_tokens": sum(counts) / len(counts),
        }

    out["teacher_oracle"] = stages.artifact(
        "teacher_oracle", key, Path(stages.root / "teacher_oracle.json"), score
    )
    return out
