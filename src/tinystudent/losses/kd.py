"""Soft-label distillation terms between student logits and cached teacher probabilities.

The teacher arrives as probabilities (that is what the soft-label cache stores), so both
functions work from ``log(teacher_probs)``: softmax is shift-invariant, so re-tempering the
teacher's log-probabilities is exactly the same as tempering its logits.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

#: Floor applied to teacher probabilities before the log, so a hard 0 in the cache stays finite.
PROB_FLOOR = 1e-8


def _check_pair(student_logits: Tensor, teacher_probs: Tensor) -> None:
    """Fail loudly on shape mismatches that broadcasting would otherwise silently accept."""
    if student_logits.dim() != 2:
        shape = tuple(student_logits.shape)
        raise ValueError(f"student_logits must be [batch, classes], got {shape}")
    if teacher_probs.shape != student_logits.shape:
        raise ValueError(
            f"teacher_probs shape {tuple(teacher_probs.shape)} does not match "
            f"student_logits shape {tuple(student_logits.shape)}"
        )


def teacher_log_probs(teacher_probs: Tensor, dtype: torch.dtype) -> Tensor:
    """Teacher log-probabilities in ``dtype``; the floor keeps cached zeros from giving -inf."""
    return teacher_probs.to(dtype).clamp_min(PROB_FLOOR).log()


def kd_kl(student_logits: Tensor, teacher_probs: Tensor, temperature: float) -> Tensor:
    """Hinton KD: ``T^2 * KL(p_T || q_T)``, averaged over the batch.

    ``q_T = softmax(student_logits / T)`` and ``p_T = softmax(log(teacher_probs) / T)``. The
    ``T^2`` factor keeps the gradient w.r.t. the student logits on the same scale whatever
    ``T`` is (without it the gradient shrinks like ``1 / T^2``), so changing ``T`` does not
    silently re-weight this term against the hard-label term.
    """
    _check_pair(student_logits, teacher_probs)
    if not temperature > 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    log_q = F.log_softmax(student_logits / temperature, dim=-1)
    log_p = F.log_softmax(teacher_log_probs(teacher_probs, log_q.dtype) / temperature, dim=-1)
    kl = F.kl_div(log_q, log_p, reduction="batchmean", log_target=True)
    return kl * (temperature * temperature)


def _centre(x: Tensor) -> Tensor:
    """Remove each row's mean: logits are only defined up to a per-row constant."""
    return x - x.mean(dim=-1, keepdim=True)


def kd_mse(student_logits: Tensor, teacher_probs: Tensor) -> Tensor:
    """MSE between centred student logits and centred teacher log-probabilities.

    Teacher log-probs are the teacher's logits up to a per-row constant, so after centring
    both sides are comparable; without centring the loss would punish a harmless shift.
    """
    _check_pair(student_logits, teacher_probs)
    target = teacher_log_probs(teacher_probs, student_logits.dtype)
    return F.mse_loss(_centre(student_logits), _centre(target))
