"""Small causal-LM training helpers shared by the generator fine-tune and rationale students.

Both train a transformers causal LM for a few dozen to a few hundred CPU steps, so they share
the learning-rate shape, the padding and a loss that counts only the tokens meant to be
learned (a prompt the model is given is context, not a target).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from tinystudent.train.engine import warmup_linear_decay  # noqa: E402,F401 - re-export

IGNORE = -100  # the label value transformers' and torch's cross-entropy skip


def encode_prompt_target(
    tokenizer: Any, prompt: str, target: str, add_eos: bool = True
) -> tuple[list[int], list[int]]:
    """Token ids of `prompt + target (+ EOS)` and labels that are IGNORE on the prompt.

    The two parts are tokenised separately and concatenated, so the boundary is exact and the
    ids equal what inference sees: the prompt's ids followed by whatever the model generates.
    """
    p = tokenizer.encode(prompt, add_special_tokens=False)
    t = tokenizer.encode(target, add_special_tokens=False)
    if add_eos and tokenizer.eos_token_id is not None:
        t = t + [int(tokenizer.eos_token_id)]
    return p + t, [IGNORE] * len(p) + t


def pad_right(
    ids: Sequence[Sequence[int]], labels: Sequence[Sequence[int]] | None, pad_id: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Right-padded `input_ids`, `attention_mask` and `labels` (IGNORE on padding).

    Without `labels` every real token is a target (plain language modelling)."""
    width = max(len(r) for r in ids)
    input_ids = torch.tensor([list(r) + [pad_id] * (width - len(r)) for r in ids])
    mask = torch.tensor([[1] * len(r) + [0] * (width - len(r)) for r in ids])
    if labels is None:
        lab = input_ids.masked_fill(mask == 0, IGNORE)
    else:
        lab = torch.tensor([list(r) + [IGNORE] * (width - len(r)) for r in labels])
    return input_ids, mask, lab


def target_logits(
    model: Any, input_ids: torch.Tensor, attention_mask: torch.Tensor, labels: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """The logits of the positions that predict a target, and what they predict (IGNORE where
    nothing is to be learned): `(logits [B, T, V], targets [B, T])`.

    Logits are computed only from the first position that predicts a target onwards
    (`logits_to_keep`): the LM head of a small LM with a 49k vocabulary is a fifth of its
    compute, and an answer-only target is a few tokens after a long prompt.
    """
    device = next(model.parameters()).device
    input_ids, attention_mask, labels = (
        input_ids.to(device),
        attention_mask.to(device),
        labels.to(device),
    )
    is_target = labels[:, 1:] != IGNORE  # position i predicts token i + 1
    if not bool(is_target.any()):
        raise ValueError("a batch without any target token has no loss")
    first = int(is_target.any(dim=0).float().argmax())  # earliest predicting position
    keep = input_ids.shape[1] - first
    try:
        logits = model(
            input_ids=input_ids, attention_mask=attention_mask, logits_to_keep=keep
        ).logits
    except TypeError:  # an architecture without logits_to_keep: compute them all
        logits = model(input_ids=input_ids, attention_mask=attention_mask).logits
    return logits[:, -keep:, :][:, :-1, :], labels[:, first + 1 :]  # positions first .. width-2


def masked_lm_loss(
    model: Any, input_ids: torch.Tensor, attention_mask: torch.Tensor, labels: torch.Tensor
) -> torch.Tensor:
    """Mean next-token cross-entropy over the target tokens (labels != IGNORE) only."""
    logits, targets = target_logits(model, input_ids, attention_mask, labels)
    return torch.nn.functional.cross_entropy(
        logits.reshape(-1, logits.shape[-1]).float(), targets.reshape(-1), ignore_index=IGNORE
    )
