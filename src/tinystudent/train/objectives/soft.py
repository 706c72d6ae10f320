"""Objectives on the student's logits: teacher soft labels (KD, MSE), gold labels, R-drop.

Conventions: `kd` is ``T^2 * KL(p_T || q_T)`` with batchmean reduction (Hinton et al.), so
its gradient keeps its scale at every temperature; `mse` matches centred logits to centred
teacher log-probabilities; `ce` averages over the rows that carry a gold label only.
"""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field
from torch import Tensor

from tinystudent.losses.ce import hard_ce
from tinystudent.losses.kd import kd_kl, kd_mse
from tinystudent.losses.rdrop import symmetric_kl
from tinystudent.students.base import StudentOutput
from tinystudent.train.batch import TrainBatch
from tinystudent.train.objectives.base import Objective, ObjectiveConfig, ObjectiveContext
from tinystudent.train.objectives.registry import register_objective


class KDConfig(ObjectiveConfig):
    temperature: float = Field(2.0, gt=0, description="softens both distributions")


@register_objective
class KD(Objective):
    """``{"kd": weight * T^2 * KL(teacher_T || student_T)}``."""

    kind: ClassVar[str] = "kd"
    Config: ClassVar[type[ObjectiveConfig]] = KDConfig

    def __init__(self, cfg: KDConfig, ctx: ObjectiveContext) -> None:
        super().__init__(cfg, ctx)
        self.temperature: float = float(cfg.temperature)

    def forward(self, out: StudentOutput, batch: TrainBatch) -> dict[str, Tensor]:
        return {"kd": self.weight * kd_kl(out.logits, batch.probs, self.temperature)}


@register_objective
class LogitMSE(Objective):
    """``{"mse": weight * MSE(centred logits, centred teacher log-probabilities)}``."""

    kind: ClassVar[str] = "mse"

    def forward(self, out: StudentOutput, batch: TrainBatch) -> dict[str, Tensor]:
        return {"mse": self.weight * kd_mse(out.logits, batch.probs)}


@register_objective
class GoldCE(Objective):
    """``{"ce": weight * cross-entropy over gold-labelled rows}`` (an attached 0 if none)."""

    kind: ClassVar[str] = "ce"
    per: ClassVar = "gold"

    def forward(self, out: StudentOutput, batch: TrainBatch) -> dict[str, Tensor]:
        return {"ce": self.weight * hard_ce(out.logits, batch.labels)}


@register_objective
class RDrop(Objective):
    """``{"rdrop": weight * symmetric KL between two dropout passes}`` (Liang et al., 2021).

    The second pass runs the student again on the same features; gradients flow through
    both. Our `weight` is R-Drop's alpha times 2 (we average the two KL directions).
    """

    kind: ClassVar[str] = "rdrop"

    def forward(self, out: StudentOutput, batch: TrainBatch) -> dict[str, Tensor]:
        again = batch.forward(batch.features)
        return {"rdrop": self.weight * symmetric_kl(out.logits, again.logits)}
