"""Continuation schedules (Continuation-KD, Jafari et al., 2022): start from a smoothed
objective (high temperature, mostly soft targets) and deform it into the one we want.

The schedule writes `temperature` and `weight` onto the run's objectives before each step;
the objectives read those plain attributes, so nothing else in the loop changes.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from tinystudent.train.config import ScheduleSpec
from tinystudent.train.objectives import Objective


def blend(spec: ScheduleSpec, progress: float) -> float:
    """How far from start to end (0 to 1) at `progress` (0 to 1); monotone, exact ends."""
    if not 0.0 <= progress <= 1.0:
        raise ValueError(f"progress must be in [0, 1], got {progress}")
    x = min(progress / spec.warmup_fraction, 1.0)
    return 0.5 * (1.0 - math.cos(math.pi * x)) if spec.kind == "cosine" else x


def _at(ends: tuple[float, float], w: float) -> float:
    return ends[1] if w >= 1.0 else ends[0] + (ends[1] - ends[0]) * w


def apply_schedule(
    spec: ScheduleSpec, objectives: Sequence[Objective], progress: float
) -> dict[str, float]:
    """Set the scheduled values for `progress`; returns them (for the training log)."""
    w = blend(spec, progress)
    values: dict[str, float] = {}
    if spec.temperature is not None:
        values["temperature"] = _at(spec.temperature, w)
    for obj in objectives:
        if "temperature" in values and hasattr(obj, "temperature"):
            setattr(obj, "temperature", values["temperature"])  # noqa: B010 - not every kind
        if obj.kind in spec.weights:
            obj.weight = values[f"weight.{obj.kind}"] = _at(spec.weights[obj.kind], w)
    return values
