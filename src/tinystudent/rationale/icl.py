"""In-context-learning distillation (Huang et al. 2022): prompts, encoding and the loss.

The student reads k demonstrations `Question: qi\\nAnswer: ai` (drawn, seeded, from the
training set, never the query itself) and then the answer-mode prompt of the query; it learns
the teacher's answer to the query (in-context tuning, ICT) and, weighted by `lm_weight`, the
demonstrations' own text (the paper's language-modelling objective). k varies per prompt
between `min_shots` and `max_shots`, so the student learns to use examples and still answers
without any. Each training question gets one fixed prompt (a pure function of the seed and
the question), so an LM teacher's outputs can be cached per prompt and a resumed run sees the
same data. The teacher is the labels (hard targets) or an LM whose distribution over its own
greedy answer tokens is the soft target (`icl_teacher.py`).
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch

from tinystudent.errors import DataError
from tinystudent.rationale.data import Example
from tinystudent.rationale.format import Mode, prompt
from tinystudent.train.causal_lm import IGNORE

DEMO_SEP = "\n\n"


def _norm(question: str) -> str:
    return " ".join(question.split())


def demo_text(example: Example) -> str:
    """One demonstration: the answer-mode prompt and its answer."""
    return f"{prompt(example.question, Mode.answer)} {example.answer}"


def sample_demos(pool: Sequence[Example], k: int, rng: random.Random, query: str) -> list[Example]:
    """`k` distinct demonstrations from `pool` (fewer if it holds fewer), none of them a
    question equal to `query` (whitespace-normalised)."""
    q = _norm(query)
    candidates = [e for e in pool if _norm(e.question) != q]
    return rng.sample(candidates, min(k, len(candidates)))


@dataclass(frozen=True)
class IclPrompt:
    """A few-shot prompt: `demos` (empty with no shots, else ending in DEMO_SEP) then `query`,
    the answer-mode prompt; `answer` is what the labels teacher vouches for."""

    id: str
    demos: str
    query: str
    answer: str
    shots: int

    @property
    def text(self) -> str:
        return self.demos + self.query


def few_shot(demos: Sequence[Example], example: Example) -> IclPrompt:
    text = "".join(demo_text(d) + DEMO_SEP for d in demos)
    return IclPrompt(
        example.id, text, prompt(example.question, Mode.answer), example.answer, len(demos)
    )


def training_prompts(
    examples: Sequence[Example], min_shots: int, max_shots: int, seed: int
) -> list[IclPrompt]:
    """One prompt per training example: k in [min_shots, max_shots] demonstrations drawn from
    the other training examples; a pure function of (seed, example id, question)."""
    out = []
    for ex in examples:
        rng = random.Random(f"icl-train:{seed}:{ex.id}:{_norm(ex.question)}")
        k = rng.randint(min_shots, max_shots)
        out.append(few_shot(sample_demos(examples, k, rng, ex.question), ex))
    return out


def eval_prompts(
    test: Sequence[Example], pool: Sequence[Example], shots: int, seed: int
) -> list[IclPrompt]:
    """The k-shot test prompts: demonstrations from the training `pool`, fixed per test
    question and data seed, so every mode (and the untrained student) reads the same ones."""
    if shots and not pool:
        raise DataError("icl k-shot evaluation needs training examples to draw demonstrations")
    out = []
    for ex in test:
        rng = random.Random(f"icl-eval:{seed}:{_norm(ex.question)}")
        out.append(few_shot(sample_demos(pool, shots, rng, ex.question), ex))
    return out


# --------------------------------------------------------------------------- encoding


@dataclass(frozen=True)
class SoftTarget:
    """An LM teacher's answer to one prompt: its greedy tokens and, per token, its top-k
    logits (ids and values) at that step."""

    tokens: list[int]
    top_ids: list[list[int]]
    top_logits: list[list[float]]


@dataclass(frozen=True)
class IclEncoded:
    """One training row. `labels`: the query's answer tokens (+ EOS), IGNORE elsewhere;
    `lm_labels`: the demonstrations' tokens, IGNORE elsewhere (None without an LM loss);
    `soft`: per answer token position, the teacher's top-k (ids, logits)."""

    ids: list[int]
    labels: list[int]
    lm_labels: list[int] | None
    soft: dict[int, tuple[list[int], list[float]]] | None
    shots: int


def encode_prompt(
    tokenizer: Any,
    p: IclPrompt,
    with_lm: bool,
    soft: SoftTarget | None = None,
) -> IclEncoded:
    """Prompt ids exactly as inference tokenises the prompt (one string), then the target:
    ` answer` + EOS (labels), or the teacher's tokens + EOS (soft; EOS stays a hard target so
    the student learns to stop). Demonstration tokens are found by character offsets."""
    text = p.text
    if with_lm and p.demos:
        enc = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
        prompt_ids = list(enc["input_ids"])
        cut = len(p.demos)
        lm = [
            t if start < cut else IGNORE for t, (start, _) in zip(prompt_ids, enc["offset_mapping"])
        ]
    else:
        prompt_ids = tokenizer.encode(text, add_special_tokens=False)
        lm = None
    eos = [int(tokenizer.eos_token_id)] if tokenizer.eos_token_id is not None else []
    if soft is None:
        target = tokenizer.encode(f" {p.answer}", add_special_tokens=False) + eos
        soft_at = None
    else:
        target = list(soft.tokens) + eos
        n = len(prompt_ids)
        soft_at = {n + j: (soft.top_ids[j], soft.top_logits[j]) for j in range(len(soft.tokens))}
    ids = prompt_ids + target
    labels = [IGNORE] * len(prompt_ids) + target
    lm_labels = None if lm is None else lm + [IGNORE] * len(target)
    return IclEncoded(ids, labels, lm_labels, soft_at, p.shots)


def icl_tensors(batch: Sequence[IclEncoded], pad_id: int) -> dict[str, torch.Tensor]:
    """LEFT-padded tensors of a batch: input_ids, attention_mask, position_ids (counting
    from each row's first real token, as generation does), labels, and when present lm_labels
    and the soft targets (soft_ids / soft_logits [B, W, K], soft_mask [B, W]).

    Why left: rows hold 0 to k demonstrations, so their lengths differ several-fold; with every
    answer at the right edge the LM head runs on the last few positions only, not from the
    shortest row's answer onwards over every longer row (a 5x slower step, measured)."""
    width = max(len(r.ids) for r in batch)

    def padded(rows: Sequence[Sequence[int]], fill: int) -> torch.Tensor:
        return torch.tensor([[fill] * (width - len(r)) + list(r) for r in rows])

    mask = padded([[1] * len(r.ids) for r in batch], 0)
    out = {
        "input_ids": padded([r.ids for r in batch], pad_id),
        "attention_mask": mask,
        "position_ids": (mask.cumsum(-1) - 1).clamp_min(0),
        "labels": padded([r.labels for r in batch], IGNORE),
    }
    if any(r.lm_labels is not None and any(t != IGNORE for t in r.lm_labels) for r in batch):
        out["lm_labels"] = padded(
            [r.lm_labels if r.lm_labels is not None else [IGNORE] * len(r.ids) for r in batch],
            IGNORE,
        )
    if any(r.soft for r in batch):
        k = max(len(ids) for r in batch if r.soft for ids, _ in r.soft.values())
        soft_ids = torch.zeros(len(batch), width, k, dtype=torch.long)
        soft_logits = torch.full((len(batch), width, k), float("-inf"))
        soft_mask = torch.zeros(len(batch), width, dtype=torch.bool)
        for b, r in enumerate(batch):
            shift = width - len(r.ids)
            for at, (ids, logits) in (r.soft or {}).items():
                pos = at + shift
                soft_ids[b, pos, : len(ids)] = torch.tensor(ids)
                soft_logits[b, pos, : len(logits)] = torch.tensor(logits)
                soft_mask[b, pos] = True
        out.update(soft_ids=soft_ids, soft_logits=soft_logits, soft_mask=soft_mask)
    return out


# --------------------------------------------------------------------------- loss


def icl_losses(
    model: Any, t: dict[str, torch.Tensor], temperature: float = 1.0
) -> dict[str, torch.Tensor]:
    """`ict`: mean over the query's answer tokens of cross-entropy (labels) or, where the
    teacher gave a soft target, T² · KL(teacher_T ‖ student_T) over the teacher's top-k;
    `lm` (when the batch has lm_labels): mean cross-entropy over the demonstrations' tokens.
    One forward; logits only from the first position that predicts a target."""
    F = torch.nn.functional
    labels = t["labels"]
    lm = t.get("lm_labels")
    wanted = labels[:, 1:] != IGNORE
    if lm is not None:
        wanted = wanted | (lm[:, 1:] != IGNORE)
    if not bool(wanted.any()):
        raise ValueError("a batch without any target token has no loss")
    first = int(wanted.any(dim=0).float().argmax())
    keep = t["input_ids"].shape[1] - first
    inputs = {k: t[k] for k in ("input_ids", "attention_mask", "position_ids") if k in t}
    try:
        logits = model(**inputs, logits_to_keep=keep).logits
    except TypeError:  # an architecture without logits_to_keep
        logits = model(**inputs).logits
    logits = logits[:, -keep:, :][:, :-1, :].float()  # predicts positions first+1 ..
    targets = labels[:, first + 1 :]
    sel = targets != IGNORE
    rows = logits[sel]
    per_token = F.cross_entropy(rows, targets[sel], reduction="none")
    if "soft_mask" in t:
        soft = t["soft_mask"][:, first + 1 :][sel]
        if bool(soft.any()):
            T = temperature
            ids = t["soft_ids"][:, first + 1 :][sel][soft]
            teacher = F.log_softmax(t["soft_logits"][:, first + 1 :][sel][soft] / T, dim=-1)
            student = F.log_softmax(rows[soft] / T, dim=-1).gather(1, ids)
            p = teacher.exp()
            kl = (p * (teacher.clamp_min(-1e4) - student)).sum(-1) * (T * T)
            per_token = per_token.masked_scatter(soft, kl)
    out = {"ict": per_token.mean()}
    if lm is not None:
        lm_t = lm[:, first + 1 :]
        out["lm"] = F.cross_entropy(
            logits.reshape(-1, logits.shape[-1]), lm_t.reshape(-1), ignore_index=IGNORE
        )
    return out
