"""Continuation schedules: start from a smoothed objective and sharpen it during training.

Continuation-KD (Jafari et al., 2022) argues the KD objective is easier to optimise when it
starts smooth (high temperature, mostly soft targets) and is gradually deformed into the
objective we actually care about. A schedule maps training progress to ``(temperature,
alpha)`` and writes them onto a ``DistillationLoss`` between steps.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from tinystudent.losses.distill import DistillationLoss

#: Values accepted for ``ContinuationSchedule(kind=...)``.
SCHEDULE_KINDS = ("linear", "cosine")


@dataclass(frozen=True)
class ContinuationSchedule:
    """Move ``(temperature, alpha)`` from their start to their end values.

    The move happens over the first ``warmup_fraction`` of training (``1.0`` = all of it);
    the end values hold afterwards. ``"cosine"`` eases in and out, ``"linear"`` does not;
    both are monotone and hit the start and end values exactly.
    """

    start_temperature: float
    end_temperature: float
    start_alpha: float
    end_alpha: float
    warmup_fraction: float = 1.0
    kind: str = "linear"

    def __post_init__(self) -> None:
        for name in ("start_temperature", "end_temperature"):
            value = getattr(self, name)
            if not (value > 0 and math.isfinite(value)):
                raise ValueError(f"{name} must be a finite number > 0, got {value}")
        for name in ("start_alpha", "end_alpha"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must be in [0, 1], got {value}")
        if not 0.0 < self.warmup_fraction <= 1.0:
            raise ValueError(f"warmup_fraction must be in (0, 1], got {self.warmup_fraction}")
        if self.kind not in SCHEDULE_KINDS:
            raise ValueError(f"kind must be one of {SCHEDULE_KINDS}, got {self.kind!r}")

    def _blend(self, progress: float) -> float:
        """Fraction of the way from start to end, in [0, 1]."""
        if not 0.0 <= progress <= 1.0:
            raise ValueError(f"progress must be in [0, 1], got {progress}")
        x = min(progress / self.warmup_fraction, 1.0)
        if self.kind == "cosine":
            return 0.5 * (1.0 - math.cos(math.pi * x))
        return x

    def at(self, progress: float) -> tuple[float, float]:
        """``(temperature, alpha)`` at ``progress`` in [0, 1] (e.g. ``step / total_steps``)."""
        w = self._blend(progress)
        if w >= 1.0:  # exact end values, free of rounding
            return self.end_temperature, self.end_alpha
        temperature = self.start_temperature + (self.end_temperature - self.start_temperature) * w
        alpha = self.start_alpha + (self.end_alpha - self.start_alpha) * w
        return temperature, alpha

    def apply(self, loss: DistillationLoss, progress: float) -> tuple[float, float]:
        """Set ``loss.temperature`` and ``loss.alpha`` for ``progress``; returns them to log."""
        temperature, alpha = self.at(progress)
        loss.temperature = temperature
        loss.alpha = alpha
        return temperature, alpha
