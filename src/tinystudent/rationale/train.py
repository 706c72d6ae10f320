"""Fine-tune a causal-LM student on answers, rationales or both, within a CPU budget.

The hot loop is here in one place. Choices worth knowing:
- the loss is on target tokens only: the question is context, not something to imitate;
- `multitask` runs one forward per task and mixes `w * label + (1 - w) * rationale`
  (`label_weight` = w), so each task's loss is a mean over its own tokens: a long rationale
  cannot drown the few answer tokens just by being long;
- `pinto` adds `counterfactual_weight * (-entropy)` of the answer given a perturbed rationale
  (`rationale/pinto.py`), a second forward over the perturbed twins of the batch;
- batches are drawn from seeded per-epoch permutations, a pure function of (seed, step), so a
  resumed run sees exactly the batches the interrupted one would have;
- a checkpoint (trainable weights, optimiser, scheduler, step, losses) is written every
  `checkpoint_every` steps; with LoRA it holds only the adapters, a few MB.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, fields
from typing import Any, TypeVar

import torch
from pydantic import BaseModel, ConfigDict, Field, model_serializer, model_validator

from tinystudent.checkpoint import Checkpoint
from tinystudent.errors import AssetMissingError, DataError
from tinystudent.rationale.data import Example
from tinystudent.rationale.format import Mode, Task, rows
from tinystudent.rationale.icl_config import IclConfig
from tinystudent.rationale.knife_spec import KnifeSpec
from tinystudent.rationale.pinto import PintoConfig, counterfactual_loss, pinto_rows
from tinystudent.train.causal_lm import encode_prompt_target, masked_lm_loss, pad_right
from tinystudent.train.engine import Fit, FitResult, Hooks
from tinystudent.train.strategy import Strategy

log = logging.getLogger(__name__)
T = TypeVar("T")
R = TypeVar("R", bound="RationaleFitResult")
PEFT_PIP = "pip install 'tinystudent[rationale]'  (or: pip install peft)"


class LoraSpec(BaseModel):
    """Low-rank adapters (peft) instead of full fine-tuning: far less optimiser memory."""

    model_config = ConfigDict(extra="forbid")

    r: int = Field(8, ge=1, description="adapter rank")
    alpha: int = Field(16, ge=1, description="scaling numerator (scale = alpha / r)")
    dropout: float = Field(0.0, ge=0.0, lt=1.0)
    target_modules: list[str] = Field(
        default_factory=lambda: ["q_proj", "k_proj", "v_proj", "o_proj"],
        min_length=1,
        description="names of the linear layers that get adapters",
    )


class RationaleTrainConfig(BaseModel):
    """The student's training budget and objective (the recipe's `train` section)."""

    model_config = ConfigDict(extra="forbid")

    mode: Mode = Field(Mode.multitask, description="answer | cot | multitask | pinto | knife | icl")
    num_examples: int = Field(256, ge=1, description="training questions used (the budget)")
    steps: int = Field(100, ge=0, description="optimiser steps")
    batch_size: int = Field(8, ge=1, description="questions per step")
    lr: float = Field(1e-4, gt=0)
    weight_decay: float = Field(0.0, ge=0)
    warmup_steps: int | None = Field(None, ge=0, description="default: a tenth of the steps")
    max_seq_len: int = Field(256, ge=8, description="prompt + target tokens; longer rows drop")
    label_weight: float = Field(
        0.5, ge=0.0, le=1.0, description="multitask w: w * label loss + (1 - w) * rationale loss"
    )
    lora: LoraSpec | None = None
    freeze_embeddings: bool = Field(
        False,
        description="keep the token embeddings (and a head tied to them) fixed: no gradient "
        "for the 49k x d matrix, a faster step and less optimiser memory",
    )
    checkpoint_every: int = Field(25, ge=0, description="steps between checkpoints (0: never)")
    max_minutes: float | None = Field(None, gt=0, description="stop cleanly after this long")
    seed: int = 0
    pinto: PintoConfig | None = Field(
        None, description="mode pinto: rationalizer, perturb_rate, counterfactual_weight"
    )
    knife: KnifeSpec | None = Field(None, description="mode knife: teacher budget, loss weights")
    icl: IclConfig | None = Field(None, description="mode icl: shots, teacher, LM weight")

    @model_validator(mode="after")
    def _pinto_options(self) -> RationaleTrainConfig:
        if self.pinto is not None and self.mode is not Mode.pinto:
            raise ValueError(f"pinto is for train.mode pinto, not {self.mode.value}")
        if self.mode is Mode.pinto and self.pinto is None:
            self.pinto = PintoConfig()
        return self

    @model_validator(mode="after")
    def _knife_only_in_knife_mode(self) -> RationaleTrainConfig:
        if self.knife is not None and self.mode is not Mode.knife:
            raise ValueError(f"train.knife belongs to mode knife, not mode {self.mode.value}")
        return self

    @model_validator(mode="after")
    def _icl_section(self) -> RationaleTrainConfig:
        if self.icl is not None and self.mode is not Mode.icl:
            raise ValueError(f"icl is the section of mode icl, not of mode {self.mode.value}")
        if self.mode is Mode.icl and self.icl is None:
            self.icl = IclConfig()  # the defaults, written out so they are in the hashes
        return self

    @model_serializer(mode="wrap")
    def _omit_unused_sections(self, handler: Any) -> dict[str, Any]:
        """No `pinto` (`knife`) key outside mode pinto (knife): the other modes' recipes dump
        and hash as they did before the keys existed, so their finished runs are still found."""
        data = dict(handler(self))
        if self.pinto is None:
            data.pop("pinto", None)
        if self.knife is None:  # likewise for mode knife's section
            data.pop("knife", None)
        if self.icl is None:  # and mode icl's
            data.pop("icl", None)
        return data


@dataclass(frozen=True)
class Encoded:
    ids: list[int]
    labels: list[int]
    task: Task


@dataclass
class RationaleFitResult(FitResult):
    """The engine's result (steps, `resumed_step`, `stopped_by_time`, seconds) plus the loss
    of every step, per task, and what the training data held."""

    losses: list[float] = field(default_factory=list)
    task_losses: dict[str, list[float]] = field(default_factory=dict)
    examples: int = 0
    dropped_too_long: int = 0

    def train_info(self) -> dict[str, Any]:
        """What the saved model's metadata and the report say of this training."""
        return {
            "steps": self.steps,
            "examples": self.examples,
            "dropped_too_long": self.dropped_too_long,
            "seconds": self.seconds,
            "stopped_by_time": self.stopped_by_time,
            "resumed_from": self.resumed_step,
            "first_loss": self.losses[0] if self.losses else None,
            "last_loss": self.losses[-1] if self.losses else None,
        }


def encode_examples(
    tokenizer: Any,
    examples: Sequence[Example],
    mode: Mode,
    max_seq_len: int,
    pinto: PintoConfig | None = None,
    seed: int = 0,
) -> tuple[list[list[Encoded]], int]:
    """One group of encoded rows per example (two in multitask and pinto); an example with any
    row longer than `max_seq_len` is dropped whole (a cut target would teach the student never
    to finish)."""
    if mode is Mode.pinto:
        encoded = pinto_rows(tokenizer, examples, pinto or PintoConfig(), seed)
    else:
        encoded = [
            [(*encode_prompt_target(tokenizer, r.prompt, r.target), r.task) for r in rows(ex, mode)]
            for ex in examples
        ]
    groups: list[list[Encoded]] = []
    too_long = 0
    for rows_ in encoded:
        group = [Encoded(ids, labels, task) for ids, labels, task in rows_]
        if max(len(g.ids) for g in group) > max_seq_len:
            too_long += 1
            continue
        groups.append(group)
    return groups, too_long


def task_tensors(batch: Sequence[Sequence[Encoded]], pad_id: int) -> dict[Task, Any]:
    """Per task, the padded (input_ids, attention_mask, labels) of a batch of example groups,
    as CPU tensors (the engine moves them to the model's device)."""
    by_task: dict[Task, list[Encoded]] = {}
    for group in batch:
        for row in group:
            by_task.setdefault(row.task, []).append(row)
    return {
        task: pad_right([r.ids for r in rows_], [r.labels for r in rows_], pad_id)
        for task, rows_ in by_task.items()
    }


def task_losses(model: Any, batch: Sequence[Sequence[Encoded]], pad_id: int) -> dict[Task, Any]:
    """Mean target-token loss per task over a batch of example groups (one forward per task)."""
    return _losses(model, task_tensors(batch, pad_id))


def _losses(model: Any, tensors: dict[Task, Any]) -> dict[Task, Any]:
    return {
        task: (counterfactual_loss if task is Task.counterfactual else masked_lm_loss)(model, *t)
        for task, t in tensors.items()
    }


def mix_losses(
    losses: dict[Task, Any], mode: Mode, label_weight: float, counterfactual_weight: float = 0.0
) -> Any:
    """The training objective: the label loss, in multitask `w·label + (1−w)·rationale`, in
    pinto `label + counterfactual_weight·(−entropy)` (a batch may lack counterfactual rows:
    those of empty rationales are not made)."""
    if mode is Mode.pinto:
        if counterfactual_weight == 0.0 or Task.counterfactual not in losses:
            return losses[Task.label]
        return losses[Task.label] + counterfactual_weight * losses[Task.counterfactual]
    if mode is not Mode.multitask:
        return losses[Task.label]
    w = label_weight
    if w == 1.0:
        return losses[Task.label]
    if w == 0.0:
        return losses[Task.rationale]
    return w * losses[Task.label] + (1.0 - w) * losses[Task.rationale]


def batch_indices(n: int, batch_size: int, step: int, seed: int) -> list[int]:
    """The examples of step `step`: consecutive slices of seeded per-epoch permutations."""
    out = []
    start = step * batch_size
    for pos in range(start, start + batch_size):
        epoch, i = divmod(pos, n)
        perm = list(range(n))
        random.Random(seed * 1_000_003 + epoch).shuffle(perm)
        out.append(perm[i])
    return out


def apply_lora(model: Any, spec: LoraSpec) -> Any:
    try:
        from peft import LoraConfig, get_peft_model
    except ImportError as e:
        raise AssetMissingError(f"train.lora needs peft: {PEFT_PIP}") from e
    cfg = LoraConfig(
        r=spec.r,
        lora_alpha=spec.alpha,
        lora_dropout=spec.dropout,
        target_modules=list(spec.target_modules),
        task_type="CAUSAL_LM",
    )
    return get_peft_model(model, cfg)


def merge_lora(model: Any) -> Any:
    """A plain transformers model again: adapters folded into the weights."""
    return model.merge_and_unload() if hasattr(model, "merge_and_unload") else model


def _training_rows(
    tokenizer: Any, examples: Sequence[Example], cfg: RationaleTrainConfig
) -> tuple[list[list[Encoded]], int, int]:
    """The encoded example groups, how many were too long, and the padding id."""
    # The caller has already cut the data to the budget (`num_examples` questions); with
    # sampled rationales a question may bring several examples, all of them are used.
    groups, too_long = encode_examples(
        tokenizer, examples, cfg.mode, cfg.max_seq_len, cfg.pinto, cfg.seed
    )
    if not groups:
        raise DataError(
            f"no training example fits train.max_seq_len={cfg.max_seq_len} in mode "
            f"{cfg.mode.value} ({too_long} too long, {len(examples)} given)"
        )
    if too_long:
        log.warning(
            "%d of %d examples are longer than max_seq_len=%d and were dropped",
            too_long,
            too_long + len(groups),
            cfg.max_seq_len,
        )
    return groups, too_long, pad_id(tokenizer)


def pad_id(tokenizer: Any) -> int:
    """The id rows are padded with: the tokenizer's pad token, else its EOS."""
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    if pad is None:
        raise DataError("the student's tokenizer has neither a pad nor an EOS token")
    return int(pad)


def rationale_fit(
    model: Any,
    cfg: RationaleTrainConfig,
    checkpoint: Checkpoint | None,
    progress: bool,
    device: str | torch.device,
    desc: str,
    steps: int | None = None,
    lr: float | None = None,
) -> tuple[Any, Fit]:
    """The engine every rationale trainer runs on (answer/cot/multitask/pinto, knife's teacher
    and student, icl): torch seeded with `cfg.seed` (LoRA's fresh adapters and dropout draw
    from it), frozen embeddings, LoRA, AdamW with warmup-linear decay over `steps` (default
    `cfg.steps`) from `lr` (default `cfg.lr`), step checkpoints of the trainable weights and
    the `max_minutes` deadline, as the recipe says. Returns the model to train (wrapped in
    adapters under LoRA) and its `Fit`."""
    torch.manual_seed(cfg.seed)
    if cfg.freeze_embeddings:
        model.get_input_embeddings().weight.requires_grad_(False)
    if cfg.lora is not None:
        model = apply_lora(model, cfg.lora)
    params = [p for p in model.parameters() if p.requires_grad]
    fit = Fit(
        model,
        torch.optim.AdamW(params, lr=cfg.lr if lr is None else lr, weight_decay=cfg.weight_decay),
        params,
        total_steps=cfg.steps if steps is None else steps,
        schedule="warmup_linear",
        warmup=cfg.warmup_steps,
        checkpoint=checkpoint,
        checkpoint_epochs=False,
        checkpoint_every=cfg.checkpoint_every,
        trainable_only=True,
        deadline=time.perf_counter() + cfg.max_minutes * 60 if cfg.max_minutes else None,
        desc=desc,
        progress=progress,
        strategy=Strategy(device),
    )
    return model, fit


def fit_rows(
    model: Any,
    fit: Fit,
    cfg: RationaleTrainConfig,
    rows: Sequence[T],
    tensors: Callable[[list[T]], Any],
    objective: Callable[[Any], tuple[dict[str, Any], dict[str, Any]]],
    result: R,
    t0: float,
    parts: str = "task_losses",
) -> tuple[Any, R]:
    """The step loop every rationale trainer shares: `fit.total_steps` steps, step s on
    `tensors(the rows batch_indices picks)`; `objective(tensors)` returns the parts the engine
    sums and backpropagates, and the parts to record in `result.<parts>` (`task_losses`, or
    knife's `parts`; checkpoints keep them under that name too). Returns the model to save
    (LoRA merged) and `result`'s class with the engine's counters and `seconds` since `t0`."""

    def prepare(s: int) -> Any:
        return tensors([rows[i] for i in batch_indices(len(rows), cfg.batch_size, s, cfg.seed)])

    def step(batch: Any) -> dict[str, Any]:
        loss_parts, recorded = objective(batch)
        result.losses.append(float(sum(v.detach() for v in loss_parts.values())))
        for name, value in recorded.items():
            getattr(result, parts).setdefault(name, []).append(float(value.detach()))
        return loss_parts

    def load(state: dict[str, Any]) -> None:
        result.losses = list(state["losses"])
        setattr(result, parts, {k: list(v) for k, v in state[parts].items()})

    hooks = Hooks(
        lambda epoch: range(fit.total_steps),
        step,
        size=lambda s: 1,
        save=lambda: {"losses": result.losses, parts: getattr(result, parts)},
        load=load,
        prepare=prepare,
    )
    counters = fit.run(hooks)
    own = {f.name for f in fields(FitResult)}  # then `result`'s own fields, as `load` left them
    extra = {f.name: getattr(result, f.name) for f in fields(result) if f.name not in own}
    done = counters.extend(type(result), **extra)
    if done.resumed_step:
        log.info("%s: resumed at step %d", fit.desc, done.resumed_step)
    if done.stopped_by_time:
        log.warning("%s stopped by train.max_minutes after %d steps", fit.desc, done.steps)
    done.seconds = time.perf_counter() - t0
    return (merge_lora(model) if cfg.lora is not None else model), done


def train_student(
    model: Any,
    tokenizer: Any,
    examples: Sequence[Example],
    cfg: RationaleTrainConfig,
    checkpoint: Checkpoint | None = None,
    progress: bool = True,
    device: str | torch.device = "cpu",
) -> tuple[Any, RationaleFitResult]:
    """Train in place (or through LoRA adapters, merged at the end) on `device`; returns the
    model to save (still on `device`).

    Resumes from `checkpoint` when it holds a state for the same key."""
    t0 = time.perf_counter()
    groups, too_long, pad = _training_rows(tokenizer, examples, cfg)
    model, fit = rationale_fit(model, cfg, checkpoint, progress, device, f"train {cfg.mode.value}")
    cf_weight = cfg.pinto.counterfactual_weight if cfg.pinto else 0.0

    def objective(tensors: dict[Task, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
        parts = _losses(model, tensors)
        loss = mix_losses(parts, cfg.mode, cfg.label_weight, cf_weight)
        return {"loss": loss}, {task.value: value for task, value in parts.items()}

    result = RationaleFitResult(
        examples=len(groups), dropped_too_long=too_long, task_losses={t.value: [] for t in Task}
    )
    return fit_rows(model, fit, cfg, groups, lambda b: task_tensors(b, pad), objective, result, t0)
