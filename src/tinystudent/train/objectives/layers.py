"""TinyBERT layer matching: the student's hidden states and attention maps against the
teacher's, on the same tokens.

The teacher runs on the student's own token ids, so these objectives need a student that
tokenizes as the teacher does (the transformer student with `tokenizer: teacher` and the
teacher's model as `teacher_model`); the pipeline checks that before training.
"""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field
from torch import Tensor

from tinystudent.losses.hidden import AttentionLoss, HiddenStateLoss
from tinystudent.students.base import StudentOutput
from tinystudent.train.batch import TrainBatch
from tinystudent.train.objectives.base import Objective, ObjectiveConfig, ObjectiveContext
from tinystudent.train.objectives.registry import register_objective


class LayerConfig(ObjectiveConfig):
    mapping: list[int] | None = Field(
        None, description="teacher layer for each student layer; default evenly spaced"
    )


def _mask(batch: TrainBatch) -> Tensor | None:
    return batch.features.get("attention_mask")


@register_objective
class HiddenMatch(Objective):
    """``{"hidden": weight * mean MSE(W h_S[i], h_T[map[i]])}``, embedding outputs included
    (entry 0 on both sides), padding excluded."""

    kind: ClassVar[str] = "hidden"
    Config: ClassVar[type[ObjectiveConfig]] = LayerConfig
    needs: ClassVar[frozenset[str]] = frozenset({"layers"})

    def __init__(self, cfg: LayerConfig, ctx: ObjectiveContext) -> None:
        super().__init__(cfg, ctx)
        if ctx.student_hidden_dim is None or ctx.teacher_hidden_dim is None:
            raise ValueError("objective hidden: needs a student and a teacher with hidden states")
        self.loss = HiddenStateLoss(
            ctx.student_hidden_dim, ctx.teacher_hidden_dim, cfg.mapping, 1.0, with_embeddings=True
        )

    def forward(self, out: StudentOutput, batch: TrainBatch) -> dict[str, Tensor]:
        if out.hidden_states is None:
            raise ValueError("objective hidden: this student returns no hidden states")
        teacher_hidden, _ = batch.teacher_layers()
        part = self.loss(out.hidden_states, teacher_hidden, _mask(batch))["hidden"]
        return {"hidden": self.weight * part}


@register_objective
class AttentionMatch(Objective):
    """``{"attention": weight * mean MSE of attention maps}`` over mapped layers."""

    kind: ClassVar[str] = "attention"
    Config: ClassVar[type[ObjectiveConfig]] = LayerConfig
    needs: ClassVar[frozenset[str]] = frozenset({"layers"})

    def __init__(self, cfg: LayerConfig, ctx: ObjectiveContext) -> None:
        super().__init__(cfg, ctx)
        self.loss = AttentionLoss(cfg.mapping, 1.0)

    def forward(self, out: StudentOutput, batch: TrainBatch) -> dict[str, Tensor]:
        if out.attentions is None:
            raise ValueError(
                "objective attention: the student returns no attention maps "
                "(use the transformer student with attentions: true)"
            )
        _, teacher_att = batch.teacher_layers()
        if teacher_att is None:
            raise ValueError("objective attention: the teacher returned no attention maps")
        part = self.loss(out.attentions, teacher_att, _mask(batch))["attention"]
        return {"attention": self.weight * part}
