"""The table of objective kinds: a new objective is one class plus `@register_objective`."""

from __future__ import annotations

from typing import TypeVar

from tinystudent.train.objectives.base import Objective

OBJECTIVES: dict[str, type[Objective]] = {}

ObjectiveType = TypeVar("ObjectiveType", bound=type[Objective])


def register_objective(cls: ObjectiveType) -> ObjectiveType:
    """Add `cls` under `cls.kind`; registering a second class under a taken kind is an error."""
    kind = cls.kind
    if kind in OBJECTIVES and OBJECTIVES[kind] is not cls:
        raise ValueError(f"objective kind {kind!r} is already registered")
    OBJECTIVES[kind] = cls
    return cls
