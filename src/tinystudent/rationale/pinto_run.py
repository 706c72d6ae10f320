"""Mode pinto inside `run_rationale`: which rationales the student trains and is tested on, and
what a test answer costs once the rationalizer's generation is counted in."""

from __future__ import annotations

import statistics
from dataclasses import replace
from typing import Any

from tinystudent.checkpoint import fingerprint
from tinystudent.rationale.data import Example, Scorer
from tinystudent.rationale.format import Mode, extract_answer
from tinystudent.rationale.pinto import PintoConfig, RationalizerSource
from tinystudent.rationale.pipeline import training_examples
from tinystudent.rationale.rationalizer import rationalize_stage
from tinystudent.rationale.recipe import RationaleRecipe
from tinystudent.stages import Stages

#: Bump when the rationalizer's prompt or decoding changes: older caches are then redone.
RATIONALIZER_FORMAT = 1


def _first_per_question(kept: list[Example]) -> list[Example]:
    seen: set[str] = set()
    out = []
    for e in kept:
        if e.question not in seen:
            seen.add(e.question)
            out.append(e)
    return out


def _summary(rows: list[dict[str, Any]], examples: list[Example], scorer: Scorer) -> dict:
    """Mean cost per question, and how often the rationale's last number is already the
    answer (what a student could copy; unfiltered, as PINTO uses them)."""
    if not rows:
        return {"questions": 0}
    return {
        "questions": len(rows),
        "new_tokens": statistics.fmean(r["new_tokens"] for r in rows),
        "prompt_tokens": statistics.fmean(r["prompt_tokens"] for r in rows),
        "seconds": statistics.fmean(r["seconds"] for r in rows),
        "empty": sum(not r["text"] for r in rows),
        "rationale_reaches_answer": statistics.fmean(
            bool(scorer(extract_answer(r["text"], Mode.cot), e)) for r, e in zip(rows, examples)
        ),
    }


def pinto_data(
    recipe: RationaleRecipe,
    questions: list[Example],
    test: list[Example],
    scorer: Scorer,
    stages: Stages,
    progress: bool,
) -> tuple[list[Example], list[Example], dict[str, Any]]:
    """Training examples, test examples (each with the frozen rationalizer's rationale in
    `rationale`) and what the rationales were and cost."""
    cfg = recipe.train.pinto or PintoConfig()
    spec = cfg.rationalizer
    configured = spec.source is RationalizerSource.configured
    meta: dict[str, Any] = {}
    demos: list[Example] = []
    train_kept: list[Example] = []
    if configured or spec.num_shots:
        # Demonstrations (and, with source configured, the training rationales) come from the
        # recipe's rationale source; without source configured only a few questions need one.
        pool = questions if configured else questions[: max(8, 4 * (spec.num_shots + 1))]
        train_kept, meta = training_examples(recipe, pool, scorer, stages)
        demos = _first_per_question(train_kept)[: spec.num_shots + 1]
    to_write = [] if configured else [(f"train/{q.id}", q.question) for q in questions]
    to_write += [(f"test/{t.id}", t.question) for t in test]
    key = fingerprint(
        str(RATIONALIZER_FORMAT),
        spec.model_dump_json(exclude={"source", "batch_size"}),
        [d.to_json() for d in demos],
        to_write,
    )
    written = rationalize_stage(stages, key, to_write, demos, spec, recipe.device, progress)

    def with_rationale(e: Example, split: str) -> Example:
        return replace(e, rationale=written[f"{split}/{e.id}"]["text"])

    train = train_kept if configured else [with_rationale(q, "train") for q in questions]
    test_rows = [written[f"test/{t.id}"] for t in test]
    info = {
        "source": (
            f"{meta.get('source')} (training), frozen {spec.model} (test)"
            if configured
            else f"frozen {spec.model}, {spec.num_shots}-shot (training and test)"
        ),
        "rationalizer": {
            **spec.model_dump(mode="json"),
            "demonstrations_from": meta.get("source"),
            "train": None
            if configured
            else _summary([written[f"train/{q.id}"] for q in questions], questions, scorer),
            "test": _summary(test_rows, test, scorer),
        },
    }
    if configured and "stats" in meta:
        info["stats"] = meta["stats"]
    return train, [with_rationale(t, "test") for t in test], info


def with_rationalizer_cost(summary: dict[str, Any], rationalizer: dict[str, Any]) -> dict:
    """A test answer's cost with the rationalizer's counted in: tokens = the rationale's
    generated tokens + the student's; seconds = the rationale's share of its batch + the
    student's. The student-only figures stay beside them."""
    test = rationalizer["test"]
    return {
        **summary,
        "student_new_tokens": summary["mean_new_tokens"],
        "student_seconds_per_answer": summary["seconds_per_answer"],
        "rationalizer_new_tokens": test["new_tokens"],
        "rationalizer_seconds_per_answer": test["seconds"],
        "mean_new_tokens": summary["mean_new_tokens"] + test["new_tokens"],
        "seconds_per_answer": summary["seconds_per_answer"] + test["seconds"],
    }


def render_lines(report: dict[str, Any]) -> list[str]:
    """The report.md lines that say where pinto's rationales came from and what they cost."""
    r = report["rationales"]["rationalizer"]
    t, s = r["test"], report["student_result"]
    lines = [
        "",
        f"Rationales: {report['rationales']['source']}; demonstrations from "
        f"{r['demonstrations_from'] or 'none (zero-shot)'}. The pinto row's tokens and seconds "
        f"include the rationalizer: {t['new_tokens']:.1f} tokens and {t['seconds']:.3f} s per "
        f"test question (student alone: {s['student_new_tokens']:.1f} tokens, "
        f"{s['student_seconds_per_answer']:.3f} s). The test rationale's last number is the "
        f"answer for {t['rationale_reaches_answer']:.1%} of the questions.",
    ]
    if r.get("train"):
        lines[-1] += (
            f" Training rationales: {r['train']['questions']} written, "
            f"{r['train']['rationale_reaches_answer']:.1%} reach the answer."
        )
    return lines
