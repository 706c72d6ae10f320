"""`tinystudent rationale RECIPE.yaml`: data -> rationales -> student -> evaluation -> report.

Every stage leaves its artifact in the run directory and records the key it was made with in
`stages.json` (`tinystudent.stages`, the resume scheme of every kind of run), so a rerun skips
what is done: `rationales.jsonl` (kept rationales), `baseline.json` (the untrained student's
score), `checkpoint/` while training, `student/` (safetensors) once trained, then
`predictions.jsonl`, `report.json` and `report.md`; mode pinto adds `pinto_rationales.json`
(the frozen rationalizer's rationales, `rationale/rationalizer.py`). A run directory from
before `stages.json` kept each key in the artifact's own metadata (`"key"`); `Stages.adopt`
takes those over, so such a directory resumes too.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

from tinystudent.checkpoint import Checkpoint, fingerprint
from tinystudent.devices import resolve_device
from tinystudent.errors import DataError
from tinystudent.io import read_json, write_json, write_text
from tinystudent.rationale.data import (
    Example,
    Scorer,
    drop_overlap,
    gsm_scorer,
    gsm_split,
    load_jsonl,
    number_match,
    save_jsonl,
)
from tinystudent.rationale.evaluate import EvalResult, evaluate_student, save_predictions
from tinystudent.rationale.format import Mode
from tinystudent.rationale.gym import gym_scorer, gym_split
from tinystudent.rationale.icl_run import icl_report, train_icl_student, vouched
from tinystudent.rationale.knife_run import knife_report, train_knife
from tinystudent.rationale.recipe import (
    DataSource,
    RationaleRecipe,
    RationaleSourceKind,
    RationaleSourceSpec,
)
from tinystudent.rationale.solvers import SolverRationales
from tinystudent.rationale.sources import (
    DatasetRationales,
    GeneratorRationales,
    RationaleSource,
    filter_rationales,
)
from tinystudent.rationale.student import META, load_student, save_student
from tinystudent.rationale.train import RationaleFitResult, train_student
from tinystudent.stages import Stages

log = logging.getLogger(__name__)


def load_data(recipe: RationaleRecipe) -> tuple[list[Example], list[Example], Scorer]:
    """Training and held-out examples (disjoint by question) and the scorer to use."""
    d = recipe.data
    if d.source is DataSource.gsm_symbolic:
        train, test = gsm_split(d.num_train, d.num_test, d.seed)
        return train, test, gsm_scorer()
    if d.source is DataSource.reasoning_gym:
        assert d.task  # checked by the recipe
        train, test = gym_split(d.task, d.task_options, d.num_train, d.num_test, d.seed)
        return train, test, gym_scorer(d.task, d.task_options)
    assert d.train_path and d.test_path  # checked by the recipe
    test = load_jsonl(d.test_path)[: d.num_test]
    train = drop_overlap(load_jsonl(d.train_path), test)
    if not train:
        raise DataError(f"{d.train_path}: every training question is also a test question")
    return train, test, number_match


def make_source(
    spec: RationaleSourceSpec, task: str | None = None, device: str = "cpu"
) -> RationaleSource:
    """The recipe's rationale source; `task` is the reasoning-gym task a solver solves; a
    local LM writing rationales runs on `device`."""
    if spec.source is RationaleSourceKind.dataset:
        return DatasetRationales()
    if spec.source is RationaleSourceKind.solver:
        if task is None:
            raise DataError("rationales.source solver needs data.source reasoning_gym")
        return SolverRationales(task)
    from tinystudent.generate.generator import make_generator

    backend = "transformers" if spec.source is RationaleSourceKind.transformers else "openai"
    generator = make_generator(
        backend, spec.model, spec.base_url, spec.api_key_env, spec.batch_size, device
    )
    return GeneratorRationales(
        generator,
        spec.num_samples,
        spec.temperature,
        spec.top_p,
        spec.max_new_tokens,
        spec.instruction,
    )


def training_examples(
    recipe: RationaleRecipe, questions: list[Example], scorer: Scorer, stages: Stages
) -> tuple[list[Example], dict[str, Any]]:
    """The examples the student trains on: the questions themselves in answer mode; else one
    example per kept rationale, cached in `rationales.jsonl` for reruns."""
    if recipe.train.mode is Mode.answer:
        return questions, {"source": "none (answer mode)"}
    icl = recipe.train.icl
    if icl is not None and (icl.soft or recipe.rationales.source is RationaleSourceKind.dataset):
        return questions, {"source": f"none (icl, teacher {icl.teacher}: the data's answers)"}
    key = fingerprint(recipe.section_hash("rationales"), [e.to_json() for e in questions])
    cache, meta_path = stages.root / "rationales.jsonl", stages.root / "rationales.json"
    stages.adopt("rationales", key, meta_path, "key")
    if stages.is_done("rationales", key, cache) and meta_path.is_file():
        stages.mark("rationales", key, ran=False)
        return load_jsonl(cache), read_json(meta_path)
    source = make_source(recipe.rationales, recipe.data.task, recipe.device)
    t0 = time.perf_counter()
    candidates = source.candidates(questions, recipe.data.seed)
    kept, stats = filter_rationales(questions, candidates, scorer)
    meta = {
        "source": source.name,
        "stats": stats.as_dict(),
        "seconds": time.perf_counter() - t0,
    }
    if not kept:
        raise DataError(
            f"no rationale was kept: {stats.candidates} candidates from {source.name}, "
            f"{stats.wrong_answer} with a wrong final answer, {stats.empty} empty"
        )
    save_jsonl(cache, kept)
    write_json(meta_path, meta)
    stages.mark("rationales", key, ran=True)
    return kept, meta


def icl_examples(
    recipe: RationaleRecipe, questions: list[Example], scorer: Scorer, stages: Stages
) -> tuple[list[Example], dict[str, Any]]:
    """Mode icl's training questions: with teacher `labels` and a rationale source (a solver:
    the programmatic stand-in teacher; or a teacher LM), those it vouches for (answered right)."""
    kept, meta = training_examples(recipe, questions, scorer, stages)
    if kept is questions:  # an LM teacher, or no source that vouches: the data's answers
        return kept, meta
    return vouched(questions, kept), {**meta, "icl_labels_vouched_by": meta["source"]}


def _max_new_tokens(recipe: RationaleRecipe, mode: Mode) -> int:
    ev = recipe.evaluate
    return ev.cot_max_new_tokens if mode is Mode.cot else ev.max_new_tokens


def baseline_score(
    recipe: RationaleRecipe, test: list[Example], scorer: Scorer, stages: Stages, progress: bool
) -> dict[str, Any] | None:
    """The untrained student's score in the answer format (`baseline.json`, a stage)."""
    if not recipe.evaluate.baseline:
        return None
    baseline_path = stages.root / "baseline.json"
    bkey = fingerprint(recipe.section_hash("student", "data", "evaluate"))

    def score() -> dict[str, Any]:
        model, tok = load_student(recipe.student.model, recipe.student.num_layers)
        model.to(resolve_device(recipe.device))
        untrained = evaluate_student(
            model,
            tok,
            test,
            Mode.answer,
            scorer,
            recipe.evaluate.max_new_tokens,
            recipe.evaluate.batch_size,
            progress,
        )
        return {"result": untrained.summary()}

    stages.adopt("baseline", bkey, baseline_path, "key")
    return dict(stages.artifact("baseline", bkey, baseline_path, score)["result"])


def trained_student(
    recipe: RationaleRecipe, examples: list[Example], stages: Stages, progress: bool
) -> tuple[Any, Any, dict[str, Any]]:
    """The trained student (loaded when the `student` stage ran with this recipe and data,
    else trained, resuming from `checkpoint/`, and saved) and what its training did."""
    cfg = recipe.train
    student_dir = stages.root / "student"
    key_parts: list[Any] = [recipe.training_hash(), [e.to_json() for e in examples]]
    if cfg.icl is not None and cfg.icl.soft:  # the LM teacher's answers are capped by this
        key_parts.append(["icl teacher max_new_tokens", recipe.evaluate.max_new_tokens])
    key = fingerprint(*key_parts)
    device = resolve_device(recipe.device)
    stages.adopt("student", key, student_dir / META, "key")
    if stages.is_done("student", key, student_dir / META):
        stages.mark("student", key, ran=False)
        model, tok = load_student(str(student_dir))
        return model.to(device), tok, dict(read_json(student_dir / META)["train"])
    model, tok = load_student(recipe.student.model, recipe.student.num_layers)
    ckpt = Checkpoint(stages.root / "checkpoint", key)
    result: RationaleFitResult
    if cfg.mode is Mode.knife:  # teacher (its own stage) first, then the student against it
        model, result = train_knife(recipe, model, tok, examples, ckpt, stages, progress)
    elif cfg.mode is Mode.icl:  # an LM teacher's answers (its own stage) first, if any
        model, result = train_icl_student(recipe, model, tok, examples, ckpt, stages, progress)
    else:
        model, result = train_student(model, tok, examples, cfg, ckpt, progress, device)
    train_info = result.train_info()
    if result.stopped_by_time:
        raise DataError(
            f"training stopped by train.max_minutes after {result.steps} of {cfg.steps} "
            "steps; the checkpoint is kept: rerun to continue"
        )
    meta = {"train": train_info, "recipe": recipe.model_dump(mode="json")}
    save_student(model.to("cpu"), tok, student_dir, meta)  # weights saved from the CPU
    stages.mark("student", key, ran=True)
    ckpt.clear()
    return model.to(device), tok, train_info


def run_rationale(recipe: RationaleRecipe, out: Path, progress: bool = True) -> dict[str, Any]:
    """Run (or resume) a rationale distillation; returns the report (also written to `out`)."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    resolve_device(recipe.device)  # before any work: `cuda` on a machine without one stops here
    cfg = recipe.train
    train_all, test, scorer = load_data(recipe)
    questions = train_all[: cfg.num_examples]
    stages = Stages(out)
    if cfg.mode is Mode.pinto:  # the frozen rationalizer's rationales, in training and test
        from tinystudent.rationale.pinto_run import pinto_data

        examples, test, rationale_meta = pinto_data(
            recipe, questions, test, scorer, stages, progress
        )
    elif cfg.mode is Mode.icl:
        examples, rationale_meta = icl_examples(recipe, questions, scorer, stages)
    else:
        examples, rationale_meta = training_examples(recipe, questions, scorer, stages)
    baseline = baseline_score(recipe, test, scorer, stages, progress)
    model, tok, train_info = trained_student(recipe, examples, stages, progress)
    res: EvalResult = evaluate_student(
        model,
        tok,
        test,
        cfg.mode,
        scorer,
        _max_new_tokens(recipe, cfg.mode),
        recipe.evaluate.batch_size,
        progress,
    )
    summary = res.summary()
    if cfg.mode is Mode.pinto:
        from tinystudent.rationale.pinto_run import with_rationalizer_cost

        summary = with_rationalizer_cost(summary, rationale_meta["rationalizer"])
        for pred, ex in zip(res.predictions, test):
            pred["rationale"] = ex.rationale  # what the student read
    save_predictions(out / "predictions.jsonl", res)
    icl = None
    if cfg.icl is not None:  # 0-shot and k-shot scores, demonstrations from the training split
        icl = icl_report(recipe, model, tok, res, train_all, test, scorer, stages, progress)
    report = {
        "name": recipe.name,
        "mode": cfg.mode.value,
        "student": recipe.student.model,
        "num_layers": recipe.student.num_layers,
        "data": {
            "source": recipe.data.source.value,
            "task": recipe.data.task,
            "train_questions": len(questions),
            "test_questions": len(test),
        },
        "rationales": {k: v for k, v in rationale_meta.items() if k != "key"},
        "budget": {
            "num_examples": cfg.num_examples,
            "steps": cfg.steps,
            "batch_size": cfg.batch_size,
            "max_seq_len": cfg.max_seq_len,
            "lr": cfg.lr,
            "label_weight": cfg.label_weight if cfg.mode is Mode.multitask else None,
            "lora": cfg.lora.model_dump() if cfg.lora else None,
            **({"pinto": cfg.pinto.model_dump(mode="json")} if cfg.pinto else {}),
            **({"icl": cfg.icl.model_dump(mode="json")} if cfg.icl else {}),
        },
        "train": train_info,
        "stages": stages.ran,
        "untrained": baseline,
        "student_result": summary,
        **({"icl": icl} if icl else {}),
        "seconds": time.perf_counter() - t0,
    }
    if cfg.mode is Mode.knife:
        report["knife"] = knife_report(recipe, examples, test, scorer, stages, progress)
        report["stages"] = stages.ran
    write_json(out / "report.json", report)
    write_text(out / "report.md", render_report(report))
    return report


def render_report(report: dict[str, Any]) -> str:
    b, r = report["budget"], report["student_result"]
    lines = [
        f"# {report['name']}: rationale distillation ({report['mode']})",
        "",
        f"Student {report['student']}"
        + (f" (first {report['num_layers']} layers)" if report.get("num_layers") else "")
        + f", {report['data']['train_questions']} training questions "
        f"({report['data']['task'] or report['data']['source']}), "
        f"{report['data']['test_questions']} held-out questions. "
        f"Budget: {b['steps']} steps x {b['batch_size']} questions, max {b['max_seq_len']} "
        f"tokens, lr {b['lr']}"
        + (f", label weight {b['label_weight']}" if b["label_weight"] is not None else "")
        + (", LoRA" if b["lora"] else "")
        + ".",
        "",
        "| student | exact match | tokens per answer | s per answer |",
        "|---|---|---|---|",
    ]
    u = report.get("untrained")
    if u:
        lines.append(
            f"| untrained | {u['accuracy']:.3f} ({u['correct']}/{u['total']}) | "
            f"{u['mean_new_tokens']:.1f} | {u['seconds_per_answer']:.3f} |"
        )
    rows = {report["mode"]: r}
    if report.get("icl"):  # icl: 0-shot and k-shot rows instead, and the untrained k-shot
        rows = {
            k.replace("_", " ").replace("shot", "-shot"): v
            for k, v in report["icl"]["results"].items()
        }
        rows.update(
            {
                k.replace("_", " ").replace("shot", "-shot"): v
                for k, v in report["icl"].items()
                if k.startswith("untrained")
            }
        )
    for name, x in rows.items():
        lines.append(
            f"| {name} | {x['accuracy']:.3f} ({x['correct']}/{x['total']}) | "
            f"{x['mean_new_tokens']:.1f} | {x['seconds_per_answer']:.3f} |"
        )
    if report["mode"] == Mode.pinto.value:
        from tinystudent.rationale.pinto_run import render_lines

        lines += render_lines(report)
    oracle = (report.get("knife") or {}).get("teacher_oracle")
    if oracle:
        lines.append(
            f"| knife teacher (gold rationale in its input: oracle) | {oracle['accuracy']:.3f} "
            f"({oracle['correct']}/{oracle['total']}) | {oracle['mean_new_tokens']:.1f} | - |"
        )
    stats = report["rationales"].get("stats")
    if stats:
        lines += [
            "",
            f"Rationales from {report['rationales']['source']}: kept {stats['kept']} of "
            f"{stats['candidates']} candidates ({stats['dropped_wrong_answer']} had a wrong "
            f"final answer).",
        ]
    return "\n".join(lines) + "\n"
