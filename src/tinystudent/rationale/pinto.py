"""PINTO (Wang et al. 2023): a reasoning module that must actually USE a prompted rationale.

Two modules. The rationalizing module is a frozen LM prompted with a few demonstrations to
write a rationale for every question, training and test alike (`rationale/rationalizer.py`),
since at test time nobody hands the student a rationale. The reasoning module is the student:
it reads `Question: q\\nRationale: r\\nAnswer:` and answers ` a` (cross-entropy on the answer
tokens). What keeps it from ignoring the rationale is the counterfactual regulariser: the same
example with a perturbed rationale, on which it is pushed to be LESS sure of the answer.

The paper (multiple-choice QA) maximises the entropy of the distribution over the answer
choices given a perturbed rationale. Our answers are generated, free-form tokens, so the
adaptation maximises the entropy of the next-token distribution (over the whole vocabulary)
at each answer position, averaged over the answer tokens: loss `label CE +
counterfactual_weight * (-entropy)`. A fraction `perturb_rate` of the rationale's tokens is
replaced by tokens drawn from the vocabulary of the training rationales (always a different
token), seeded per example, so a resumed run sees the same perturbations. Only rationale
tokens change; the question, the `Answer:` cue and the answer stay as they are.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from enum import Enum
from typing import Any

import torch
from pydantic import BaseModel, ConfigDict, Field

from tinystudent.rationale.data import Example
from tinystudent.rationale.format import Task, pinto_prompt
from tinystudent.train.causal_lm import IGNORE, encode_prompt_target, target_logits

#: (input ids, labels, task) of one training row, as `train.Encoded` holds them.
EncodedRow = tuple[list[int], list[int], Task]


class RationalizerSource(str, Enum):
    """Who writes the TRAINING questions' rationales (test ones always come from the LM)."""

    lm = "lm"
    configured = "configured"


class RationalizerSpec(BaseModel):
    """The frozen, few-shot prompted LM (the recipe's `train.pinto.rationalizer`)."""

    model_config = ConfigDict(extra="forbid")

    source: RationalizerSource = Field(
        RationalizerSource.lm,
        description="training rationales: lm (the frozen prompted LM, as in the paper) or "
        "configured (the recipe's rationales.source, e.g. a big teacher); test rationales "
        "always come from the frozen LM",
    )
    model: str = Field("smollm2-135m", description="smollm2-135m (all 30 layers) or a folder")
    num_shots: int = Field(
        3, ge=0, description="demonstrations: training questions with rationales.source's"
    )
    max_new_tokens: int = Field(48, ge=1, description="rationale length cap (tokens)")
    batch_size: int = Field(16, ge=1, description="prompts per greedy generate call")


class PintoConfig(BaseModel):
    """The recipe's `train.pinto` (only with `train.mode: pinto`)."""

    model_config = ConfigDict(extra="forbid")

    rationalizer: RationalizerSpec = RationalizerSpec()
    perturb_rate: float = Field(
        0.5, gt=0.0, le=1.0, description="share of rationale tokens replaced at random"
    )
    counterfactual_weight: float = Field(
        0.5, ge=0.0, description="weight of -entropy of the answer given a perturbed rationale"
    )


def perturb(
    ids: Sequence[int],
    start: int,
    end: int,
    rate: float,
    vocab: Sequence[int],
    rng: random.Random,
) -> list[int]:
    """`ids` with `round(rate * n)` (at least one) of the n tokens in `[start, end)` replaced
    by a different token drawn from `vocab`; nothing outside the span changes."""
    out = list(ids)
    n = end - start
    if n <= 0 or not vocab:
        return out
    k = min(n, max(1, round(rate * n)))
    for pos in sorted(rng.sample(range(start, end), k)):
        if all(v == out[pos] for v in vocab):
            continue  # nothing else to draw
        new = out[pos]
        while new == out[pos]:
            new = vocab[rng.randrange(len(vocab))]
        out[pos] = new
    return out


def _pieces(tokenizer: Any, ex: Example) -> tuple[list[int], list[int], list[int]]:
    """Token ids of the prompt's parts: up to `Rationale:`, the rationale, `\\nAnswer:`."""
    q = " ".join(ex.question.split())
    r = (ex.rationale or "").strip()

    def enc(text: str) -> list[int]:
        return list(tokenizer.encode(text, add_special_tokens=False)) if text else []

    return enc(f"Question: {q}\nRationale:"), enc(f" {r}" if r else ""), enc("\nAnswer:")


def pinto_rows(
    tokenizer: Any, examples: Sequence[Example], cfg: PintoConfig, seed: int
) -> list[list[EncodedRow]]:
    """Per example: the clean row (tokenised whole, exactly as the student reads it at test
    time; loss on ` a` + EOS) and, unless the rationale is empty or the weight is 0, its
    counterfactual twin (rationale perturbed; labels on the answer tokens only, no EOS: the
    entropy is of the answer)."""
    pieces = [_pieces(tokenizer, ex) for ex in examples]
    vocab = sorted({t for _, r, _ in pieces for t in r})
    out: list[list[EncodedRow]] = []
    for i, (ex, (head, rat, tail)) in enumerate(zip(examples, pieces)):
        prompt = pinto_prompt(ex.question, ex.rationale or "")
        ids, labels = encode_prompt_target(tokenizer, prompt, f" {ex.answer}")
        group: list[EncodedRow] = [(ids, labels, Task.label)]
        if rat and cfg.counterfactual_weight > 0:
            rng = random.Random(f"pinto:{seed}:{i}")
            span = (len(head), len(head) + len(rat))
            bad = perturb(head + rat + tail, *span, cfg.perturb_rate, vocab, rng)
            answer = list(tokenizer.encode(f" {ex.answer}", add_special_tokens=False))
            group.append((bad + answer, [IGNORE] * len(bad) + answer, Task.counterfactual))
        out.append(group)
    return out


def answer_entropy(
    model: Any, input_ids: torch.Tensor, attention_mask: torch.Tensor, labels: torch.Tensor
) -> torch.Tensor:
    """Mean entropy (nats) of the model's next-token distribution at the answer positions."""
    logits, targets = target_logits(model, input_ids, attention_mask, labels)
    logp = torch.log_softmax(logits.float(), dim=-1)
    entropy = -(logp.exp() * logp).sum(dim=-1)
    return entropy[targets != IGNORE].mean()


def counterfactual_loss(
    model: Any, input_ids: torch.Tensor, attention_mask: torch.Tensor, labels: torch.Tensor
) -> torch.Tensor:
    """-entropy of the answer given a perturbed rationale: minimising it makes the student
    less confident when the rationale no longer supports the answer."""
    return -answer_entropy(model, input_ids, attention_mask, labels)
