"""Mode `icl` in a rationale run: its training (the shared engine, icl rows and loss) and its
0-shot / k-shot evaluation. `pipeline.py` calls in here, so the mode lives in one place."""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from tinystudent.checkpoint import Checkpoint, fingerprint
from tinystudent.devices import resolve_device
from tinystudent.errors import DataError
from tinystudent.rationale.data import Example, Scorer
from tinystudent.rationale.evaluate import EvalResult, evaluate_student, save_predictions
from tinystudent.rationale.format import Mode
from tinystudent.rationale.icl import (
    IclEncoded,
    IclPrompt,
    SoftTarget,
    encode_prompt,
    eval_prompts,
    icl_losses,
    icl_tensors,
    training_prompts,
)
from tinystudent.rationale.icl_config import IclConfig
from tinystudent.rationale.recipe import RationaleRecipe
from tinystudent.rationale.student import load_student
from tinystudent.rationale.train import (
    RationaleFitResult,
    RationaleTrainConfig,
    fit_rows,
    pad_id,
    rationale_fit,
)
from tinystudent.stages import Stages

log = logging.getLogger(__name__)


def vouched(questions: Sequence[Example], kept: Sequence[Example]) -> list[Example]:
    """The questions a rationale source got right (one kept rationale or more): their answers
    are the labels teacher's hard targets."""
    ok = {" ".join(e.question.split()) for e in kept}
    return [q for q in questions if " ".join(q.question.split()) in ok]


@dataclass
class IclFitResult(RationaleFitResult):
    """The rationale result plus what the icl data held: shots per kept prompt, prompts too
    long for max_seq_len, empty teacher answers, and the teacher's own record."""

    icl: dict[str, Any] = field(default_factory=dict)

    def train_info(self) -> dict[str, Any]:
        return {**super().train_info(), "icl": self.icl}


def encode_rows(
    tokenizer: Any,
    prompts: Sequence[IclPrompt],
    icl: IclConfig,
    max_seq_len: int,
    soft: Sequence[SoftTarget] | None = None,
) -> tuple[list[IclEncoded], dict[str, Any]]:
    """Encoded rows; a prompt longer than `max_seq_len` (with its target) is dropped, and so is
    a prompt whose LM teacher answered nothing. Returns the rows and the counts."""
    rows: list[IclEncoded] = []
    too_long = empty = 0
    for i, p in enumerate(prompts):
        target = None if soft is None else soft[i]
        if target is not None and not target.tokens:
            empty += 1
            continue
        row = encode_prompt(tokenizer, p, icl.lm_weight > 0, target)
        if len(row.ids) > max_seq_len:
            too_long += 1
            continue
        rows.append(row)
    shots = Counter(r.shots for r in rows)
    info = {
        "prompts": len(prompts),
        "kept": len(rows),
        "dropped_too_long": too_long,
        "dropped_empty_teacher_answer": empty,
        "shots": {str(k): shots[k] for k in sorted(shots)},
    }
    if not rows:
        raise DataError(
            f"no icl training prompt fits train.max_seq_len={max_seq_len} ({too_long} too "
            f"long, {empty} empty teacher answers, {len(prompts)} prompts); raise max_seq_len "
            "or lower train.icl.max_shots"
        )
    if too_long:
        log.warning(
            "icl: %d of %d prompts are longer than max_seq_len=%d and were dropped",
            too_long,
            len(prompts),
            max_seq_len,
        )
    return rows, info


def train_icl(
    model: Any,
    tokenizer: Any,
    rows: Sequence[IclEncoded],
    cfg: RationaleTrainConfig,
    checkpoint: Checkpoint | None = None,
    progress: bool = True,
    device: str | torch.device = "cpu",
) -> tuple[Any, IclFitResult]:
    """Train on icl rows with the shared engine: loss `ict + lm_weight * lm` (the LM term only
    where a batch holds demonstration tokens); seeded batches as in `train.train_student`."""
    assert cfg.icl is not None  # set by RationaleTrainConfig for mode icl
    icl = cfg.icl
    t0 = time.perf_counter()
    pad = pad_id(tokenizer)
    model, fit = rationale_fit(model, cfg, checkpoint, progress, device, "train icl")

    def tensors(batch: list[IclEncoded]) -> dict[str, torch.Tensor]:
        out = icl_tensors(batch, pad)
        if icl.lm_weight == 0:
            out.pop("lm_labels", None)
        return out

    def objective(t: dict[str, torch.Tensor]) -> tuple[dict[str, Any], dict[str, Any]]:
        got = icl_losses(model, t, icl.temperature)
        loss = got["ict"] + icl.lm_weight * got["lm"] if "lm" in got else got["ict"]
        return {"loss": loss}, got

    result = IclFitResult(examples=len(rows), task_losses={"ict": [], "lm": []})
    return fit_rows(model, fit, cfg, rows, tensors, objective, result, t0)


def train_icl_student(
    recipe: RationaleRecipe,
    model: Any,
    tokenizer: Any,
    examples: Sequence[Example],
    checkpoint: Checkpoint,
    stages: Stages,
    progress: bool,
) -> tuple[Any, IclFitResult]:
    """The `student` stage's training in mode icl: prompts -> (the LM teacher's cached answers,
    a stage, capped at `evaluate.max_new_tokens`) -> rows -> training."""
    cfg, ev, device = recipe.train, recipe.evaluate, resolve_device(recipe.device)
    assert cfg.icl is not None
    prompts = training_prompts(examples, cfg.icl.min_shots, cfg.icl.max_shots, cfg.seed)
    soft, teacher_meta = None, {"teacher": "labels"}
    if cfg.icl.soft:
        from tinystudent.rationale.icl_teacher import cached_teacher

        soft, teacher_meta = cached_teacher(
            cfg.icl.teacher,
            prompts,
            tokenizer,
            stages,
            ev.max_new_tokens,
            ev.batch_size,
            str(device),
        )
    rows, info = encode_rows(tokenizer, prompts, cfg.icl, cfg.max_seq_len, soft)
    model, result = train_icl(model, tokenizer, rows, cfg, checkpoint, progress, device)
    result.dropped_too_long = info["dropped_too_long"]
    result.icl = {**info, "teacher": teacher_meta}
    return model, result


# --------------------------------------------------------------------------- evaluation


def evaluate_k_shot(
    model: Any,
    tokenizer: Any,
    test: Sequence[Example],
    pool: Sequence[Example],
    shots: int,
    seed: int,
    scorer: Scorer,
    max_new_tokens: int,
    batch_size: int,
    progress: bool = False,
) -> EvalResult:
    """The student's score with `shots` demonstrations before every test question (0: the
    plain answer prompt); demonstrations fixed per test question and data seed."""
    prompts = [p.text for p in eval_prompts(test, pool, shots, seed)]
    return evaluate_student(
        model, tokenizer, test, Mode.icl, scorer, max_new_tokens, batch_size, progress, prompts
    )


def icl_report(
    recipe: RationaleRecipe,
    model: Any,
    tokenizer: Any,
    zero_shot: EvalResult,
    pool: Sequence[Example],
    test: Sequence[Example],
    scorer: Scorer,
    stages: Stages,
    progress: bool = False,
) -> dict[str, Any]:
    """The report's `icl` section: `icl_0shot` (the run's own evaluation) and `icl_<k>shot` of
    the trained student (demonstrations from `pool`, the training split), and, when the recipe
    scores the untrained student, its k-shot score (a stage, `baseline_<k>shot.json`): does
    the base LM use the examples before ICL training?"""
    assert recipe.train.icl is not None
    ev, k, seed = recipe.evaluate, recipe.train.icl.eval_shots, recipe.data.seed

    def k_shot(m: Any, tok: Any) -> EvalResult:
        return evaluate_k_shot(
            m, tok, test, pool, k, seed, scorer, ev.max_new_tokens, ev.batch_size, progress
        )

    res = k_shot(model, tokenizer)
    save_predictions(stages.root / f"predictions_{k}shot.jsonl", res)
    out: dict[str, Any] = {
        "eval_shots": k,
        "results": {"icl_0shot": zero_shot.summary(), f"icl_{k}shot": res.summary()},
    }
    if ev.baseline:
        base_key = recipe.section_hash("student", "data", "evaluate")
        key = fingerprint("icl-untrained", k, seed, [e.to_json() for e in test], base_key)

        def score() -> dict[str, Any]:
            base, tok = load_student(recipe.student.model, recipe.student.num_layers)
            return {"result": k_shot(base.to(resolve_device(recipe.device)), tok).summary()}

        path = stages.root / f"baseline_{k}shot.json"
        out[f"untrained_{k}shot"] = stages.artifact(f"baseline_{k}shot", key, path, score)["result"]
    return out
