"""The objective contract: whole student output and batch in, named loss parts out.

An objective is an `nn.Module` built once per run from its recipe entry (`{kind, weight,
...options}`) and what the run knows about the student and the teacher (`ObjectiveContext`).
Its `forward` returns a dict of already-weighted named parts; the loop sums and logs them and
never looks inside. Learned pieces (projections) live in the objective, so the loop gives
their parameters to the optimizer and keeps them in its checkpoints.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field
from torch import Tensor, nn

from tinystudent.students.base import StudentOutput
from tinystudent.train.batch import TrainBatch

#: What an objective can need beyond probabilities; the pipeline computes only what is asked.
NEEDS = ("embeddings", "layers")


class ObjectiveConfig(BaseModel):
    """Every objective's options: `weight` scales its parts; unknown keys are errors."""

    model_config = ConfigDict(extra="forbid")

    weight: float = Field(1.0, ge=0, description="multiplies every part this objective returns")


@dataclass
class ObjectiveContext:
    """What building an objective may depend on; widths are None where unknown."""

    num_classes: int
    student_dim: int | None = None  # width of StudentOutput.pooled
    student_hidden_dim: int | None = None  # width of StudentOutput.hidden_states
    teacher_dim: int | None = None  # width of the teacher's sentence embedding
    teacher_hidden_dim: int | None = None  # width of the teacher's hidden states


class Objective(nn.Module):
    """Base of every objective. Subclasses set `kind`, `Config`, `needs`, and `forward`.

    `per` says what the objective averages over, so data-parallel training can weigh a
    rank's share of a global batch: "row" (every row) or "gold" (rows with a gold label).
    Attributes the schedule may move (`weight`, and `temperature` where there is one) are
    plain floats read at every step.
    """

    kind: ClassVar[str]
    Config: ClassVar[type[ObjectiveConfig]] = ObjectiveConfig
    needs: ClassVar[frozenset[str]] = frozenset()
    per: ClassVar[Literal["row", "gold"]] = "row"

    def __init__(self, cfg: ObjectiveConfig, ctx: ObjectiveContext) -> None:
        super().__init__()
        self.cfg = cfg
        self.weight: float = float(cfg.weight)

    def forward(self, out: StudentOutput, batch: TrainBatch) -> dict[str, Tensor]:
        raise NotImplementedError

    def extra_repr(self) -> str:
        return ", ".join(f"{k}={v!r}" for k, v in self.cfg.model_dump().items())


def describe(cfg: ObjectiveConfig) -> dict[str, Any]:
    """An objective's options as JSON-able data (for logs and `tinystudent check`)."""
    return cfg.model_dump(mode="json")
