"""Multi-label distillation: each label is its own yes/no question with a soft teacher answer.

A multi-label teacher gives one independent probability per label (rows do not sum to 1), so
softmax KL does not apply; the student's logits are read as independent sigmoids and each is
pulled towards the teacher's probability by binary cross-entropy with soft targets.
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor


def soft_bce(student_logits: Tensor, teacher_probs: Tensor) -> Tensor:
    """Mean over rows and labels of ``BCE(sigmoid(logit), p_teacher)``.

    Its minimum is at ``sigmoid(logit) = p_teacher`` (the teacher's entropy, not 0), and its
    gradient w.r.t. a logit is ``(sigmoid(logit) - p) / labels``: the same scale for every
    label count up to that mean."""
    if student_logits.dim() != 2:
        raise ValueError(
            f"student_logits must be [batch, labels], got {tuple(student_logits.shape)}"
        )
    if teacher_probs.shape != student_logits.shape:
        raise ValueError(
            f"teacher_probs shape {tuple(teacher_probs.shape)} does not match "
            f"student_logits shape {tuple(student_logits.shape)}"
        )
    target = teacher_probs.to(student_logits.dtype).clamp(0.0, 1.0)
    return F.binary_cross_entropy_with_logits(student_logits, target)
