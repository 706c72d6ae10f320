"""What an embedding student is trained on: the teacher's vectors, three ways (pure functions).

Conventions (tests pin them):
- `mse_loss` sums the squared error over the embedding dimensions and averages over the batch
  (not `nn.MSELoss`'s mean over every entry, which shrinks with the width: 1/384 of this for
  MiniLM), so its weight means the same for any teacher;
- `cosine_loss` is the mean of 1 - cos(student, teacher): only directions count, which is all
  that cosine-similarity search and a normalised encoder use;
- `info_nce` is DisCo's contrastive term: each student vector must pick its own text's
  teacher vector out of the batch's teacher vectors (cross-entropy over cosine / temperature).
  It teaches *relative* geometry (who is nearer to whom), which MSE and cosine do not.

`distill_objective` returns the weighted parts by name; the trainer logs them and sums them,
and never looks inside.
"""

from __future__ import annotations

import torch
from pydantic import BaseModel, ConfigDict, Field, model_validator
from torch import Tensor
from torch.nn import functional as F


class ObjectiveConfig(BaseModel):
    """Weights of the three terms (0 turns a term off) and InfoNCE's temperature."""

    model_config = ConfigDict(extra="forbid")

    mse: float = Field(1.0, ge=0, description="weight of the squared distance to the teacher")
    cosine: float = Field(1.0, ge=0, description="weight of 1 - cos(student, teacher)")
    contrastive: float = Field(0.1, ge=0, description="weight of in-batch InfoNCE (DisCo)")
    temperature: float = Field(0.05, gt=0, le=10, description="InfoNCE temperature")
    symmetric: bool = Field(
        False, description="also pick each teacher vector's student vector (two-way InfoNCE)"
    )

    @model_validator(mode="after")
    def _some_term(self) -> ObjectiveConfig:
        if self.mse == self.cosine == self.contrastive == 0:
            raise ValueError("all weights are 0: set mse, cosine or contrastive above 0")
        return self


def _check(student: Tensor, teacher: Tensor) -> None:
    if student.shape != teacher.shape or student.dim() != 2:
        raise ValueError(
            f"student {tuple(student.shape)} and teacher {tuple(teacher.shape)} must both be "
            "[batch, dim]"
        )


def mse_loss(student: Tensor, teacher: Tensor) -> Tensor:
    """Mean over the batch of the squared Euclidean distance to the teacher's vector."""
    _check(student, teacher)
    return (student - teacher.detach()).pow(2).sum(-1).mean()


def cosine_loss(student: Tensor, teacher: Tensor) -> Tensor:
    """Mean of 1 - cos(student, teacher); 0 when every pair points the same way."""
    _check(student, teacher)
    return (1 - F.cosine_similarity(student, teacher.detach(), dim=-1, eps=1e-8)).mean()


def info_nce(
    student: Tensor, teacher: Tensor, temperature: float = 0.05, symmetric: bool = False
) -> Tensor:
    """In-batch InfoNCE: row i of cos(student, teacher) / temperature should peak at column i.

    The batch's other teacher vectors are the negatives, so a batch must not hold the same
    text twice (the training texts are deduplicated). `symmetric` adds the column-wise term
    and averages the two.
    """
    _check(student, teacher)
    s = F.normalize(student, dim=-1, eps=1e-8)
    t = F.normalize(teacher.detach(), dim=-1, eps=1e-8)
    logits = s @ t.T / temperature
    target = torch.arange(len(s), device=s.device)
    loss = F.cross_entropy(logits, target)
    if symmetric:
        loss = (loss + F.cross_entropy(logits.T, target)) / 2
    return loss


def distill_objective(student: Tensor, teacher: Tensor, cfg: ObjectiveConfig) -> dict[str, Tensor]:
    """The weighted terms with a non-zero weight, by name; their sum is the training loss."""
    parts: dict[str, Tensor] = {}
    if cfg.mse:
        parts["mse"] = cfg.mse * mse_loss(student, teacher)
    if cfg.cosine:
        parts["cosine"] = cfg.cosine * cosine_loss(student, teacher)
    if cfg.contrastive:
        parts["contrastive"] = cfg.contrastive * info_nce(
            student, teacher, cfg.temperature, cfg.symmetric
        )
    return parts
