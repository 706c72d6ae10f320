"""Typed training settings: optimisation, the list of objectives, and their schedule.

`objectives` is a list of `{kind, weight, ...options}`; left out, the classic keys map onto
it (`temperature`, `alpha`, `loss`: ``kd`` or ``mse`` at weight ``alpha`` plus ``ce`` at
``1 - alpha``), which reproduces the runs made before objectives existed exactly.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from tinystudent.train.objectives import OBJECTIVES, ObjectiveConfig


class ObjectiveSpec(BaseModel):
    """One recipe entry: `kind` picks the objective; every other key is its option."""

    model_config = ConfigDict(extra="allow")
    kind: str

    @model_validator(mode="after")
    def _check(self) -> ObjectiveSpec:
        self.config()  # raises with the option's name
        return self

    def config(self) -> ObjectiveConfig:
        if self.kind not in OBJECTIVES:
            raise ValueError(
                f"unknown objective kind {self.kind!r}; choose from {sorted(OBJECTIVES)}"
            )
        return OBJECTIVES[self.kind].Config(**(self.model_extra or {}))

    def resolved(self) -> dict[str, Any]:
        """The entry with every default filled in (what `tinystudent check` prints)."""
        return {"kind": self.kind, **self.config().model_dump(mode="json")}


class ScheduleSpec(BaseModel):
    """Continuation schedule: temperature and weights move from start to end over training.

    `temperature: [start, end]` applies to every objective that has a temperature (kd,
    contrastive); `weights: {kind: [start, end]}` to the named objectives. Values move over
    the first `warmup_fraction` of the steps and hold afterwards; `cosine` eases in and out.
    """

    model_config = ConfigDict(extra="forbid")

    kind: Literal["linear", "cosine"] = "linear"
    warmup_fraction: float = Field(1.0, gt=0, le=1)
    temperature: tuple[float, float] | None = None
    weights: dict[str, tuple[float, float]] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _check(self) -> ScheduleSpec:
        if self.temperature is not None and min(self.temperature) <= 0:
            raise ValueError(f"temperature: both ends must be > 0, got {list(self.temperature)}")
        for kind, ends in self.weights.items():
            if min(ends) < 0:
                raise ValueError(f"weights.{kind}: both ends must be >= 0, got {list(ends)}")
        if self.temperature is None and not self.weights:
            raise ValueError("a schedule needs temperature and/or weights to move")
        return self


class TrainConfig(BaseModel):
    """Student optimisation and what it optimises (`objectives`, `schedule`)."""

    model_config = ConfigDict(extra="forbid")

    epochs: int = Field(8, ge=1)
    batch_size: int = Field(64, ge=1)
    lr: float = Field(3e-3, gt=0)
    weight_decay: float = Field(1e-4, ge=0)
    temperature: float = Field(2.0, gt=0, description="kd temperature when objectives is unset")
    alpha: float = Field(0.9, ge=0, le=1, description="kd weight (ce: 1 - alpha), same case")
    loss: Literal["kl", "mse"] = "kl"
    objectives: list[ObjectiveSpec] | None = Field(
        None, min_length=1, description="list of {kind, weight, ...}; default from alpha/loss"
    )
    schedule: ScheduleSpec | None = None
    val_fraction: float = Field(0.1, ge=0, lt=0.5)
    patience: int = Field(3, ge=1)
    max_grad_norm: float = Field(1.0, gt=0)
    seed: int = 0

    @model_validator(mode="after")
    def _one_way(self) -> TrainConfig:
        legacy = {"temperature", "alpha", "loss"} & self.model_fields_set
        if self.objectives is not None and legacy:
            raise ValueError(
                f"give objectives or {sorted(legacy)}, not both (put the temperature and "
                "weight into the kd / ce entries)"
            )
        kinds = [o.kind for o in self.resolved_objectives()]
        if len(set(kinds)) != len(kinds):
            raise ValueError(f"objectives: a kind appears twice in {kinds}")
        if self.schedule is not None:
            unknown = sorted(set(self.schedule.weights) - set(kinds))
            if unknown:
                raise ValueError(f"schedule.weights: {unknown} are not among objectives {kinds}")
        return self

    def resolved_objectives(self) -> list[ObjectiveSpec]:
        """The objectives this run optimises; the classic keys when none are listed."""
        if self.objectives is not None:
            return list(self.objectives)
        first = (
            ObjectiveSpec(kind="kd", weight=self.alpha, temperature=self.temperature)
            if self.loss == "kl"
            else ObjectiveSpec(kind="mse", weight=self.alpha)
        )
        return [first, ObjectiveSpec(kind="ce", weight=1.0 - self.alpha)]

    def resolved(self) -> dict[str, Any]:
        """The settings with the objectives spelled out and the classic keys folded into
        them: what `tinystudent check` prints and what stage hashes read, so a recipe written
        either way hashes (and trains) the same."""
        data = self.model_dump(mode="json", exclude={"temperature", "alpha", "loss"})
        data["objectives"] = [o.resolved() for o in self.resolved_objectives()]
        if self.schedule is None:
            data.pop("schedule")
        return data

    def needs(self) -> set[str]:
        """Teacher signals beyond probabilities that the objectives read."""
        return set().union(*(OBJECTIVES[o.kind].needs for o in self.resolved_objectives()))
