"""TinyBERT-style intermediate-layer losses: hidden states and attention maps.

A student with fewer layers learns from a subset of the teacher's layers: student layer
``i`` is matched to teacher layer ``mapping[i]``. Hidden states of different widths are
compared through one learned ``nn.Linear`` shared by all layers (TinyBERT's ``W_h``); its
weights live in the loss module, so the trainer must give the loss's parameters to the
optimizer too. Teacher features are detached: they are fixed targets.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn


def uniform_layer_map(
    num_student: int, num_teacher: int, with_embeddings: bool = False
) -> list[int]:
    """Evenly spaced teacher layers, the last student layer always on the last teacher layer.

    Student layer ``i`` (0-based) maps to ``ceil((i + 1) * T / S) - 1``: 4 of 12 gives
    ``[2, 5, 8, 11]``. With ``with_embeddings`` (lists as Hugging Face ``hidden_states``,
    embedding output first) entry 0 maps to 0 and the rest are spaced over the real layers.
    """
    if num_student < 1 or num_teacher < 1:
        raise ValueError(
            f"num_student and num_teacher must be >= 1, got {num_student} and {num_teacher}"
        )
    if with_embeddings:
        if num_student < 2 or num_teacher < 2:
            raise ValueError("with_embeddings needs at least 2 entries on each side")
        rest = uniform_layer_map(num_student - 1, num_teacher - 1)
        return [0, *(1 + j for j in rest)]
    return [-(-(i + 1) * num_teacher // num_student) - 1 for i in range(num_student)]


def _resolve_mapping(
    mapping: Sequence[int] | None, num_student: int, num_teacher: int, with_embeddings: bool
) -> list[int]:
    """The mapping to use, checked against the actual number of layers passed in."""
    if mapping is None:
        return uniform_layer_map(num_student, num_teacher, with_embeddings)
    if len(mapping) != num_student:
        raise ValueError(
            f"mapping has {len(mapping)} entries but {num_student} student layers were given"
        )
    for i, j in enumerate(mapping):
        if not 0 <= j < num_teacher:
            raise ValueError(f"mapping[{i}] = {j} is outside the {num_teacher} teacher layers")
    return list(mapping)


def masked_mse(a: Tensor, b: Tensor, weight: Tensor | None = None) -> Tensor:
    """Mean squared error over the entries where ``weight`` (broadcast to ``a``) is non-zero.

    Padding must not count: padded tokens' features are arbitrary and would otherwise pull
    the student towards noise. An all-masked input gives an attached zero, not NaN.
    """
    if a.shape != b.shape:
        raise ValueError(f"shapes differ: {tuple(a.shape)} vs {tuple(b.shape)}")
    sq = (a - b).pow(2)
    if weight is None:
        return sq.mean()
    w = weight.to(sq.dtype).expand_as(sq)
    return (sq * w).sum() / w.sum().clamp_min(1.0)


def hidden_mse(student: Tensor, teacher: Tensor, attention_mask: Tensor | None = None) -> Tensor:
    """MSE between ``[B, L, H]`` features; ``attention_mask`` ``[B, L]`` (1 = real token)."""
    weight = None if attention_mask is None else attention_mask[:, :, None]
    return masked_mse(student, teacher, weight)


def attention_mse(student: Tensor, teacher: Tensor, attention_mask: Tensor | None = None) -> Tensor:
    """MSE between ``[B, heads, L, L]`` attention probabilities.

    When head counts differ there is no head-to-head correspondence, so both sides are
    averaged over heads first. Only (query, key) pairs of two real tokens count.
    """
    if student.dim() != 4 or teacher.dim() != 4:
        raise ValueError(
            f"attention maps must be [batch, heads, len, len], got {tuple(student.shape)} "
            f"and {tuple(teacher.shape)}"
        )
    if student.shape[1] != teacher.shape[1]:
        student = student.mean(dim=1, keepdim=True)
        teacher = teacher.mean(dim=1, keepdim=True)
    weight = None
    if attention_mask is not None:
        m = attention_mask
        weight = m[:, None, :, None] * m[:, None, None, :]
    return masked_mse(student, teacher, weight)


class HiddenStateLoss(nn.Module):
    """``{"hidden": weight * mean over mapped layers of MSE(proj(h_S[i]), h_T[mapping[i]])}``.

    The projection is the identity when widths match (so identical features give zero) and
    a learned ``nn.Linear(student_dim, teacher_dim)`` otherwise. ``mapping=None`` uses
    ``uniform_layer_map`` on the lengths of the lists passed to ``forward``.
    """

    def __init__(
        self,
        student_dim: int,
        teacher_dim: int,
        mapping: Sequence[int] | None = None,
        weight: float = 1.0,
        with_embeddings: bool = False,
    ) -> None:
        super().__init__()
        if student_dim < 1 or teacher_dim < 1:
            raise ValueError(
                f"student_dim and teacher_dim must be >= 1, got {student_dim} and {teacher_dim}"
            )
        self.student_dim = student_dim
        self.teacher_dim = teacher_dim
        self.mapping: list[int] | None = None if mapping is None else list(mapping)
        self.weight: float = float(weight)
        self.with_embeddings = with_embeddings
        self.projection: nn.Module = (
            nn.Identity() if student_dim == teacher_dim else nn.Linear(student_dim, teacher_dim)
        )

    def forward(
        self,
        student_hidden: Sequence[Tensor],
        teacher_hidden: Sequence[Tensor],
        attention_mask: Tensor | None = None,
    ) -> dict[str, Tensor]:
        mapping = _resolve_mapping(
            self.mapping, len(student_hidden), len(teacher_hidden), self.with_embeddings
        )
        terms = []
        for i, j in enumerate(mapping):
            s, t = student_hidden[i], teacher_hidden[j]
            if s.shape[-1] != self.student_dim or t.shape[-1] != self.teacher_dim:
                raise ValueError(
                    f"layer {i} -> {j}: widths {s.shape[-1]} -> {t.shape[-1]} do not match "
                    f"student_dim={self.student_dim}, teacher_dim={self.teacher_dim}"
                )
            terms.append(hidden_mse(self.projection(s), t.detach(), attention_mask))
        return {"hidden": self.weight * torch.stack(terms).mean()}

    def extra_repr(self) -> str:
        return f"mapping={self.mapping}, weight={self.weight}"


class AttentionLoss(nn.Module):
    """``{"attention": weight * mean over mapped layers of attention_mse}``; no parameters."""

    def __init__(self, mapping: Sequence[int] | None = None, weight: float = 1.0) -> None:
        super().__init__()
        self.mapping: list[int] | None = None if mapping is None else list(mapping)
        self.weight: float = float(weight)

    def forward(
        self,
        student_attentions: Sequence[Tensor],
        teacher_attentions: Sequence[Tensor],
        attention_mask: Tensor | None = None,
    ) -> dict[str, Tensor]:
        mapping = _resolve_mapping(
            self.mapping, len(student_attentions), len(teacher_attentions), False
        )
        terms = [
            attention_mse(student_attentions[i], teacher_attentions[j].detach(), attention_mask)
            for i, j in enumerate(mapping)
        ]
        return {"attention": self.weight * torch.stack(terms).mean()}

    def extra_repr(self) -> str:
        return f"mapping={self.mapping}, weight={self.weight}"
