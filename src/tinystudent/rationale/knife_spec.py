"""The recipe's `train.knife` section: the KNIFE teacher's budget and the student's loss mix.

Its own module so `train.py` (the `train` section) can hold it without importing the KNIFE
training code, which imports `train.py`."""

from __future__ import annotations

from enum import Enum

from pydantic import BaseModel, ConfigDict, Field


class KnifeLayers(str, Enum):
    """Which hidden states the student matches: the last layer's, or every layer's."""

    last = "last"
    all = "all"


class KnifeSpec(BaseModel):
    """KNIFE (Chan et al. 2022): a teacher reads the rationale, the student matches its states.

    `teacher_steps` / `teacher_lr` default to the student's `train.steps` / `train.lr`;
    `teacher_layers` to `student.num_layers` (the teacher is a copy of the student's base)."""

    model_config = ConfigDict(extra="forbid")

    teacher_steps: int | None = Field(None, ge=1, description="default: train.steps")
    teacher_lr: float | None = Field(None, gt=0, description="default: train.lr")
    teacher_layers: int | None = Field(None, ge=1, description="default: student.num_layers")
    hidden_weight: float = Field(1.0, ge=0.0, description="weight of the hidden-state MSE")
    logit_weight: float = Field(1.0, ge=0.0, description="weight of T^2 * KL on answer logits")
    temperature: float = Field(2.0, gt=0.0, description="T of the logit KL")
    layers: KnifeLayers = Field(KnifeLayers.last, description="last | all")
    score_teacher: bool = Field(
        True, description="also score the teacher with the gold rationale in its input (oracle)"
    )
