"""The multi-label objective: soft binary targets, one sigmoid per label (`losses/bce.py`)."""

from __future__ import annotations

from typing import ClassVar

from torch import Tensor

from tinystudent.losses.bce import soft_bce
from tinystudent.students.base import StudentOutput
from tinystudent.train.batch import TrainBatch
from tinystudent.train.objectives.base import Objective
from tinystudent.train.objectives.registry import register_objective


@register_objective
class SoftBCE(Objective):
    """``{"bce": weight * mean BCE(sigmoid(logits), teacher per-label probabilities)}``.

    Only for `data.multi_label` runs (the recipe refuses it elsewhere): a single-label
    teacher's softmax rows are not independent per-label probabilities."""

    kind: ClassVar[str] = "bce"

    def forward(self, out: StudentOutput, batch: TrainBatch) -> dict[str, Tensor]:
        return {"bce": self.weight * soft_bce(out.logits, batch.probs)}
