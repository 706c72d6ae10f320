"""Distillation objectives: one small module per family, one registry, one contract.

Importing this package registers the built-in kinds: `kd`, `mse`, `ce`, `rdrop` (logits),
`embedding`, `contrastive` (sentence vectors), `hidden`, `attention` (TinyBERT layers),
`bce` (multi-label: one sigmoid per label).
"""

from tinystudent.train.objectives import embedding, layers, multilabel, soft  # noqa: F401
from tinystudent.train.objectives.base import (
    NEEDS,
    Objective,
    ObjectiveConfig,
    ObjectiveContext,
    describe,
)
from tinystudent.train.objectives.registry import OBJECTIVES, register_objective

__all__ = [
    "NEEDS",
    "OBJECTIVES",
    "Objective",
    "ObjectiveConfig",
    "ObjectiveContext",
    "describe",
    "register_objective",
]
