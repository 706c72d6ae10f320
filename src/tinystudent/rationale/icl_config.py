"""The recipe's `train.icl` section: in-context-learning distillation (Huang et al. 2022).

Kept apart from `train.py` so the training module and the icl module can both import it
without a cycle; pydantic only, no torch."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, model_validator

#: `teacher: labels`: hard targets, the answers the data (or the rationale source) vouches for.
LABELS = "labels"


class IclConfig(BaseModel):
    """Few-shot prompts with `min_shots`..`max_shots` demonstrations; the student learns the
    teacher's answer to the query, plus `lm_weight` x the LM loss on the demonstrations."""

    model_config = ConfigDict(extra="forbid")

    teacher: str = Field(
        LABELS,
        description="labels (hard targets: the data's answers) or a local causal-LM folder / "
        "smollm2-135m prompted with the same demonstrations (soft targets)",
    )
    min_shots: int = Field(0, ge=0, description="fewest demonstrations in a training prompt")
    max_shots: int = Field(4, ge=0, description="most demonstrations in a training prompt")
    eval_shots: int = Field(4, ge=1, description="demonstrations at test time (k-shot score)")
    lm_weight: float = Field(
        0.5, ge=0.0, description="weight of the LM loss on the demonstrations' tokens (0: none)"
    )
    temperature: float = Field(1.0, gt=0.0, description="LM teacher: softmax temperature of KL")

    @model_validator(mode="after")
    def _shots(self) -> IclConfig:
        if self.min_shots > self.max_shots:
            raise ValueError(f"min_shots {self.min_shots} > max_shots {self.max_shots}")
        if not self.teacher.strip():
            raise ValueError("teacher must be 'labels', 'smollm2-135m' or a model folder")
        return self

    @property
    def soft(self) -> bool:
        """Whether the teacher is an LM (soft targets) rather than the labels."""
        return self.teacher != LABELS
