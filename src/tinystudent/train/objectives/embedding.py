"""Objectives on the student's sentence vector against the teacher's cached sentence embedding.

A 2-class probability is one number per text; the teacher's embedding is hundreds, so matching
it gives a tiny student far more signal per text. Widths differ, so the student's vector goes
through a learned linear projection (kept in the objective, trained with the student, not
exported: inference needs only the student's own head).
"""

from __future__ import annotations

from typing import ClassVar, Literal

import torch
import torch.nn.functional as F
from pydantic import Field
from torch import Tensor, nn

from tinystudent.students.base import StudentOutput
from tinystudent.train.batch import TrainBatch
from tinystudent.train.objectives.base import Objective, ObjectiveConfig, ObjectiveContext
from tinystudent.train.objectives.registry import register_objective


def _projection(kind: str, ctx: ObjectiveContext) -> nn.Linear:
    if ctx.student_dim is None or ctx.teacher_dim is None:
        raise ValueError(
            f"objective {kind}: needs the student's sentence vector and the teacher's sentence "
            "embedding (a frozen or fine-tuned encoder teacher)"
        )
    return nn.Linear(ctx.student_dim, ctx.teacher_dim)


def _student_vector(kind: str, out: StudentOutput) -> Tensor:
    if out.pooled is None:
        raise ValueError(f"objective {kind}: this student returns no sentence vector (pooled)")
    return out.pooled


def _teacher_vector(kind: str, batch: TrainBatch) -> Tensor:
    if batch.embeddings is None:
        raise ValueError(f"objective {kind}: the run computed no teacher embeddings")
    return batch.embeddings


class EmbeddingConfig(ObjectiveConfig):
    loss: Literal["cosine", "mse", "both"] = Field(
        "cosine", description="1 - cosine, squared L2 distance, or their sum"
    )


@register_objective
class EmbeddingMatch(Objective):
    """``{"embedding": weight * distance(W s + b, t)}``, averaged over rows."""

    kind: ClassVar[str] = "embedding"
    Config: ClassVar[type[ObjectiveConfig]] = EmbeddingConfig
    needs: ClassVar[frozenset[str]] = frozenset({"embeddings"})

    def __init__(self, cfg: EmbeddingConfig, ctx: ObjectiveContext) -> None:
        super().__init__(cfg, ctx)
        self.loss = cfg.loss
        self.projection = _projection(self.kind, ctx)

    def forward(self, out: StudentOutput, batch: TrainBatch) -> dict[str, Tensor]:
        s = self.projection(_student_vector(self.kind, out))
        t = _teacher_vector(self.kind, batch).to(s.dtype)
        term = s.new_zeros(())
        if self.loss in ("cosine", "both"):
            term = term + (1.0 - F.cosine_similarity(s, t, dim=-1)).mean()
        if self.loss in ("mse", "both"):
            term = term + (s - t).pow(2).sum(-1).mean()
        return {"embedding": self.weight * term}


class ContrastiveConfig(ObjectiveConfig):
    temperature: float = Field(0.1, gt=0, description="InfoNCE temperature")
    symmetric: bool = Field(True, description="also classify each teacher vector's student")


@register_objective
class Contrastive(Objective):
    """DisCo-style in-batch InfoNCE: each student vector must pick its own text's teacher
    embedding among the batch's. ``{"contrastive": weight * CE(s_i . t_j / tau, i)}``.

    Under data-parallel training each rank's negatives are its own shard (a statistically
    equivalent objective, not the same numbers as one process).
    """

    kind: ClassVar[str] = "contrastive"
    Config: ClassVar[type[ObjectiveConfig]] = ContrastiveConfig
    needs: ClassVar[frozenset[str]] = frozenset({"embeddings"})

    def __init__(self, cfg: ContrastiveConfig, ctx: ObjectiveContext) -> None:
        super().__init__(cfg, ctx)
        self.temperature: float = float(cfg.temperature)
        self.symmetric = cfg.symmetric
        self.projection = _projection(self.kind, ctx)

    def forward(self, out: StudentOutput, batch: TrainBatch) -> dict[str, Tensor]:
        s = F.normalize(self.projection(_student_vector(self.kind, out)), dim=-1)
        t = F.normalize(_teacher_vector(self.kind, batch).to(s.dtype), dim=-1)
        sim = s @ t.T / self.temperature
        target = torch.arange(len(s), device=s.device)
        term = F.cross_entropy(sim, target)
        if self.symmetric:
            term = 0.5 * (term + F.cross_entropy(sim.T, target))
        return {"contrastive": self.weight * term}
