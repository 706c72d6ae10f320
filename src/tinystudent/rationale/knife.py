"""KNIFE (Chan et al. 2022) adapted to causal LMs: a teacher that reads the rationale, and a
student that never does but learns to carry the teacher's hidden states.

- Teacher input: `Rationale: r\\n` + the student's `Question: q\\nAnswer:` -> ` a` (loss on the
  answer tokens). A bottleneck mask stops the answer block (the `\\nAnswer:` prompt tail and
  the answer tokens) from attending to rationale positions, so what the rationale contributes
  to the answer must pass through the question tokens' states, which do attend to it. Those
  states are what the student is taught to reproduce from the question alone.
- Student input: exactly the teacher's question+answer token ids, without the rationale, so
  position j of the student is position `len(rationale ids) + j` of the teacher; the ids are
  one list tokenised once and shared, and `aligned` checks it. Loss: answer CE
  + `hidden_weight` * MSE of hidden states at every question+answer position
  + `logit_weight` * T^2 * KL(teacher || student) on the answer-predicting logits.
- Test time the student is an answer-only student: same prompt, same cost.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import torch
import torch.nn.functional as F

from tinystudent.checkpoint import Checkpoint
from tinystudent.errors import DataError
from tinystudent.rationale.data import Example
from tinystudent.rationale.format import Mode, prompt
from tinystudent.rationale.knife_spec import KnifeLayers, KnifeSpec
from tinystudent.rationale.train import (
    RationaleFitResult,
    RationaleTrainConfig,
    fit_rows,
    pad_id,
    rationale_fit,
)
from tinystudent.train.causal_lm import IGNORE, encode_prompt_target, pad_right

log = logging.getLogger(__name__)
TAIL = "\nAnswer:"


def teacher_prefix(rationale: str) -> str:
    """What the teacher reads before the student's prompt."""
    return f"Rationale: {rationale.strip()}\n"


@dataclass(frozen=True)
class KnifeRow:
    """One example: the teacher's rationale prefix ids, the shared question+answer ids and
    labels (IGNORE on the prompt), and where in `ids` the bottlenecked tail starts."""

    rationale: list[int]
    ids: list[int]
    labels: list[int]
    tail: int

    @property
    def teacher_ids(self) -> list[int]:
        return self.rationale + self.ids


def tail_start(tokenizer: Any, prompt_text: str, prompt_ids: Sequence[int]) -> int:
    """Index of the first prompt token of the `\\nAnswer:` tail: the prompt's ids past the
    longest common prefix with the ids of the question part alone (a token that straddles
    the boundary counts as tail, which only tightens the bottleneck)."""
    head = tokenizer.encode(prompt_text[: prompt_text.rindex(TAIL)], add_special_tokens=False)
    n = 0
    while n < min(len(head), len(prompt_ids)) and head[n] == prompt_ids[n]:
        n += 1
    return n


def encode_knife(
    tokenizer: Any, examples: Sequence[Example], max_seq_len: int
) -> tuple[list[KnifeRow], int]:
    """The rows of `examples` and how many were dropped because the teacher's sequence (the
    longer one) exceeds `max_seq_len`."""
    out: list[KnifeRow] = []
    too_long = 0
    for ex in examples:
        if ex.rationale is None:
            raise DataError(f"example {ex.id} has no rationale; mode knife's teacher needs one")
        text = prompt(ex.question, Mode.knife)
        ids, labels = encode_prompt_target(tokenizer, text, f" {ex.answer}")
        prompt_ids = ids[: labels.count(IGNORE)]
        rat = tokenizer.encode(teacher_prefix(ex.rationale), add_special_tokens=False)
        if len(rat) + len(ids) > max_seq_len:
            too_long += 1
            continue
        out.append(KnifeRow(rat, ids, labels, tail_start(tokenizer, text, prompt_ids)))
    return out, too_long


def bottleneck_mask(
    rationale_lens: torch.Tensor,
    tail_starts: torch.Tensor,
    lengths: torch.Tensor,
    width: int,
    dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    """Additive (B, 1, width, width) attention mask: causal, no padding keys, and no query at or
    after `tail_starts[b]` (absolute positions) sees a key before `rationale_lens[b]`. Every
    query sees itself, so padding rows never softmax over nothing (no NaN)."""
    pos = torch.arange(width)
    allowed = (pos[None, :] <= pos[:, None])[None] & (pos[None, :] < lengths[:, None])[:, None, :]
    in_tail = pos[None, :] >= tail_starts[:, None]
    is_rationale = pos[None, :] < rationale_lens[:, None]
    allowed &= ~(in_tail[:, :, None] & is_rationale[:, None, :])
    allowed |= torch.eye(width, dtype=torch.bool)[None]
    mask = torch.zeros(allowed.shape, dtype=dtype).masked_fill(~allowed, torch.finfo(dtype).min)
    return mask[:, None]


def teacher_tensors(rows: Sequence[KnifeRow], pad_id: int) -> dict[str, torch.Tensor]:
    """The teacher's padded ids, bottleneck mask, labels, and each row's rationale length."""
    ids, _, labels = pad_right(
        [r.teacher_ids for r in rows],
        [[IGNORE] * len(r.rationale) + r.labels for r in rows],
        pad_id,
    )
    rat = torch.tensor([len(r.rationale) for r in rows])
    lengths = torch.tensor([len(r.teacher_ids) for r in rows])
    mask = bottleneck_mask(rat, rat + torch.tensor([r.tail for r in rows]), lengths, ids.shape[1])
    return {"ids": ids, "mask": mask, "labels": labels, "offsets": rat}


def knife_tensors(rows: Sequence[KnifeRow], pad_id: int) -> dict[str, torch.Tensor]:
    """A student batch (its own ids, 2D mask, labels) beside the teacher's (`t_*`)."""
    ids, mask, labels = pad_right([r.ids for r in rows], [r.labels for r in rows], pad_id)
    teacher = teacher_tensors(rows, pad_id)
    return {"ids": ids, "mask": mask, "labels": labels, **{f"t_{k}": v for k, v in teacher.items()}}


def aligned(teacher_h: torch.Tensor, offsets: torch.Tensor, width: int) -> torch.Tensor:
    """The teacher's states at the student's positions 0..width-1 (row b from offsets[b]);
    positions past a row's end repeat its last one and are masked out by the caller."""
    idx = offsets[:, None] + torch.arange(width, device=offsets.device)[None, :]
    idx = idx.clamp(max=teacher_h.shape[1] - 1)
    return teacher_h.gather(1, idx[..., None].expand(-1, -1, teacher_h.shape[-1]))


def _answer_slice(labels: torch.Tensor) -> tuple[int, torch.Tensor, torch.Tensor]:
    """First predicting position, the targets from there on, and which of them count."""
    is_target = labels[:, 1:] != IGNORE
    if not bool(is_target.any()):
        raise ValueError("a batch without any target token has no loss")
    first = int(is_target.any(dim=0).float().argmax())
    targets = labels[:, first + 1 :]
    return first, targets, targets != IGNORE


def teacher_loss(model: Any, t: dict[str, torch.Tensor]) -> torch.Tensor:
    """The teacher's answer-token CE with the bottleneck in place."""
    first, targets, sel = _answer_slice(t["labels"])
    mask = t["mask"].to(next(model.parameters()).dtype)
    keep = t["ids"].shape[1] - first
    logits = model(input_ids=t["ids"], attention_mask=mask, logits_to_keep=keep).logits[:, :-1]
    return F.cross_entropy(logits[sel].float(), targets[sel])


def knife_losses(
    student: Any, teacher: Any, b: dict[str, torch.Tensor], spec: KnifeSpec
) -> dict[str, torch.Tensor]:
    """The student's three loss parts (unweighted): answer CE, hidden MSE, T^2 * KL."""
    first, targets, sel = _answer_slice(b["labels"])
    width = b["ids"].shape[1]
    out = student(
        input_ids=b["ids"],
        attention_mask=b["mask"],
        logits_to_keep=width - first,
        output_hidden_states=True,
    )
    s_logits = out.logits[:, :-1][sel].float()
    ce = F.cross_entropy(s_logits, targets[sel])
    with torch.no_grad():
        t_mask = b["t_mask"].to(next(teacher.parameters()).dtype)
        t_out = teacher(
            input_ids=b["t_ids"], attention_mask=t_mask, logits_to_keep=1, output_hidden_states=True
        )
    s_hs, t_hs = out.hidden_states[1:], t_out.hidden_states[1:]
    if spec.layers is KnifeLayers.last:
        s_hs, t_hs = s_hs[-1:], t_hs[-1:]
    elif len(s_hs) != len(t_hs):
        raise DataError(
            f"train.knife.layers all needs as many teacher layers as student layers "
            f"({len(t_hs)} vs {len(s_hs)}); use layers: last"
        )
    valid = b["mask"].bool()
    hidden = torch.stack(
        [
            (s[valid] - aligned(t, b["t_offsets"], width)[valid]).pow(2).mean()
            for s, t in zip(s_hs, t_hs)
        ]
    ).mean()
    with torch.no_grad():
        t_last = aligned(t_hs[-1], b["t_offsets"], width)[:, first:-1][sel]
        t_logits = teacher.get_output_embeddings()(t_last).float()
    temp = spec.temperature
    kl = F.kl_div(
        F.log_softmax(s_logits / temp, dim=-1),
        F.log_softmax(t_logits / temp, dim=-1),
        log_target=True,
        reduction="batchmean",
    ) * (temp * temp)
    return {"ce": ce, "hidden": hidden, "logit": kl}


@dataclass
class KnifeFitResult(RationaleFitResult):
    """The rationale result plus each loss part per step, as summed (the student's weighted)."""

    parts: dict[str, list[float]] = field(default_factory=dict)

    def train_info(self) -> dict[str, Any]:
        return {
            **super().train_info(),
            "first_parts": {k: v[0] for k, v in self.parts.items() if v},
            "last_parts": {k: v[-1] for k, v in self.parts.items() if v},
        }


def _rows(
    tokenizer: Any, examples: Sequence[Example], max_seq_len: int
) -> tuple[list[KnifeRow], KnifeFitResult, int]:
    """The training rows, the result they start, and the padding id."""
    rows, too_long = encode_knife(tokenizer, examples, max_seq_len)
    if not rows:
        raise DataError(
            f"no training example fits train.max_seq_len={max_seq_len} in mode knife "
            f"(the teacher reads the rationale too; {too_long} too long, {len(examples)} given)"
        )
    if too_long:
        log.warning("knife: %d of %d examples too long, dropped", too_long, len(examples))
    return rows, KnifeFitResult(examples=len(rows), dropped_too_long=too_long), pad_id(tokenizer)


def train_teacher(
    model: Any,
    tokenizer: Any,
    examples: Sequence[Example],
    cfg: RationaleTrainConfig,
    checkpoint: Checkpoint | None = None,
    progress: bool = True,
    device: str | torch.device = "cpu",
) -> tuple[Any, KnifeFitResult]:
    """Fine-tune the bottlenecked teacher (rationale in its input) on the answer tokens."""
    t0 = time.perf_counter()
    spec = cfg.knife or KnifeSpec()
    rows, result, pad = _rows(tokenizer, examples, cfg.max_seq_len)
    steps, lr = spec.teacher_steps or cfg.steps, spec.teacher_lr or cfg.lr
    model, fit = rationale_fit(model, cfg, checkpoint, progress, device, "knife teacher", steps, lr)

    def objective(t: dict[str, torch.Tensor]) -> tuple[dict[str, Any], dict[str, Any]]:
        parts = {"ce": teacher_loss(model, t)}
        return parts, parts

    tensors = partial(teacher_tensors, pad_id=pad)
    return fit_rows(model, fit, cfg, rows, tensors, objective, result, t0, "parts")


def train_knife_student(
    model: Any,
    tokenizer: Any,
    teacher: Any,
    examples: Sequence[Example],
    cfg: RationaleTrainConfig,
    checkpoint: Checkpoint | None = None,
    progress: bool = True,
    device: str | torch.device = "cpu",
) -> tuple[Any, KnifeFitResult]:
    """Train the student (no rationale in its input) against the frozen `teacher`."""
    t0 = time.perf_counter()
    spec = cfg.knife or KnifeSpec()
    rows, result, pad = _rows(tokenizer, examples, cfg.max_seq_len)
    teacher = teacher.to(device).eval().requires_grad_(False)
    model, fit = rationale_fit(model, cfg, checkpoint, progress, device, "train knife")

    def objective(b: dict[str, torch.Tensor]) -> tuple[dict[str, Any], dict[str, Any]]:
        parts = knife_losses(model, teacher, b, spec)
        weighted = {
            "ce": parts["ce"],
            "hidden": spec.hidden_weight * parts["hidden"],
            "logit": spec.logit_weight * parts["logit"],
        }
        return weighted, weighted

    tensors = partial(knife_tensors, pad_id=pad)
    return fit_rows(model, fit, cfg, rows, tensors, objective, result, t0, "parts")


def oracle_rows(tokenizer: Any, examples: Sequence[Example]) -> list[KnifeRow]:
    """Test-time teacher rows: each example's rationale, then the bare prompt (no answer)."""
    out = []
    for ex in examples:
        text = prompt(ex.question, Mode.knife)
        ids = tokenizer.encode(text, add_special_tokens=False)
        rat = tokenizer.encode(teacher_prefix(ex.rationale or ""), add_special_tokens=False)
        out.append(KnifeRow(rat, ids, [IGNORE] * len(ids), tail_start(tokenizer, text, ids)))
    return out


def next_logits(teacher: Any, rows: Sequence[KnifeRow], pad_id: int) -> torch.Tensor:
    """(B, vocab) logits for the token after each row, under the bottleneck mask."""
    param = next(teacher.parameters())
    t = teacher_tensors(rows, pad_id)
    with torch.inference_mode():
        logits = teacher(
            input_ids=t["ids"].to(param.device),
            attention_mask=t["mask"].to(param.device, param.dtype),
        ).logits
    last = torch.tensor([len(r.teacher_ids) - 1 for r in rows], device=logits.device)
    return logits[torch.arange(len(rows), device=logits.device), last]


def teacher_greedy(
    teacher: Any,
    tokenizer: Any,
    examples: Sequence[Example],
    max_new_tokens: int,
    batch_size: int = 16,
) -> tuple[list[str], list[int]]:
    """Greedy answers of the bottlenecked teacher, each with its example's rationale in its
    input (an oracle input: the test-time student never has one). No KV cache: every step
    reruns the batch under the bottleneck mask, cheap for answers of a few tokens."""
    eos = tokenizer.eos_token_id
    pad = pad_id(tokenizer)
    rows = oracle_rows(tokenizer, examples)
    texts, counts = [], []
    teacher.eval()
    for start in range(0, len(rows), batch_size):
        chunk = rows[start : start + batch_size]
        new: list[list[int]] = [[] for _ in chunk]
        done = [False] * len(chunk)
        for _ in range(max_new_tokens):
            cur = [
                KnifeRow(r.rationale, r.ids + n, r.labels + [IGNORE] * len(n), r.tail)
                for r, n in zip(chunk, new)
            ]
            best = next_logits(teacher, cur, pad).argmax(dim=-1).tolist()
            for i, tok in enumerate(best):
                if not done[i]:
                    new[i].append(int(tok))
                    done[i] = eos is not None and tok == eos
            if all(done):
                break
        for n in new:
            counts.append(len(n))
            texts.append(tokenizer.decode(n, skip_special_tokens=True))
    return texts, counts
