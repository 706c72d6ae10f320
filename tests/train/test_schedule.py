"""Continuation schedules: exact ends, monotone moves, validation, applied to objectives."""

from __future__ import annotations

import math
from itertools import pairwise

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from tinystudent.train import ScheduleSpec, TrainConfig
from tinystudent.train.objectives import OBJECTIVES, ObjectiveContext
from tinystudent.train.schedule import apply_schedule, blend


def _objectives(cfg: TrainConfig):
    ctx = ObjectiveContext(num_classes=2)
    return [OBJECTIVES[s.kind](s.config(), ctx) for s in cfg.resolved_objectives()]


@pytest.mark.parametrize("kind", ["linear", "cosine"])
@pytest.mark.parametrize("warmup", [1.0, 0.3])
def test_schedule_hits_start_and_end(kind: str, warmup: float):
    spec = ScheduleSpec(kind=kind, warmup_fraction=warmup, temperature=(8.0, 1.0))
    assert blend(spec, 0.0) == 0.0
    assert blend(spec, warmup) == 1.0 and blend(spec, 1.0) == 1.0
    assert blend(spec, warmup / 2) == pytest.approx(0.5)  # both kinds: halfway


def test_schedule_kinds_differ_off_the_midpoint():
    lin = ScheduleSpec(kind="linear", temperature=(4.0, 2.0))
    cos = ScheduleSpec(kind="cosine", temperature=(4.0, 2.0))
    assert blend(lin, 0.25) == pytest.approx(0.25)
    assert blend(cos, 0.25) == pytest.approx((1 - math.cos(math.pi / 4)) / 2)


@settings(max_examples=40, deadline=None, database=None)
@given(
    t0=st.floats(0.5, 10.0),
    t1=st.floats(0.5, 10.0),
    w0=st.floats(0.0, 1.0),
    w1=st.floats(0.0, 1.0),
    warmup=st.floats(0.05, 1.0),
    kind=st.sampled_from(["linear", "cosine"]),
)
def test_schedule_is_monotone_and_bounded(
    t0: float, t1: float, w0: float, w1: float, warmup: float, kind: str
):
    spec = ScheduleSpec(
        kind=kind, warmup_fraction=warmup, temperature=(t0, t1), weights={"kd": (w0, w1)}
    )
    objs = _objectives(TrainConfig())
    values = [apply_schedule(spec, objs, i / 50) for i in range(51)]
    for a, b in pairwise(values):
        assert (b["temperature"] - a["temperature"]) * math.copysign(1.0, t1 - t0) >= -1e-12
        assert (b["weight.kd"] - a["weight.kd"]) * math.copysign(1.0, w1 - w0) >= -1e-12
    assert values[0]["temperature"] == t0 and values[-1]["temperature"] == t1
    assert values[-1]["weight.kd"] == w1


def test_apply_sets_temperature_and_named_weights_only():
    objs = _objectives(TrainConfig())  # kd (weight 0.9, T 2) + ce (weight 0.1)
    spec = ScheduleSpec(temperature=(6.0, 2.0), weights={"kd": (1.0, 0.5)})
    assert apply_schedule(spec, objs, 0.5) == {"temperature": 4.0, "weight.kd": 0.75}
    kd, ce = objs
    assert (kd.temperature, kd.weight) == (4.0, 0.75)
    assert ce.weight == pytest.approx(0.1)  # not named: untouched


@pytest.mark.parametrize(
    ("data", "name"),
    [
        ({"temperature": [0.0, 1.0]}, "temperature"),
        ({"weights": {"kd": [-1.0, 1.0]}}, "weights.kd"),
        ({"temperature": [2, 1], "warmup_fraction": 0.0}, "warmup_fraction"),
        ({"temperature": [2, 1], "kind": "step"}, "kind"),
        ({}, "temperature and/or weights"),
    ],
)
def test_schedule_validates_fields(data: dict, name: str):
    with pytest.raises(ValidationError, match=name):
        ScheduleSpec(**data)


def test_schedule_weights_must_name_objectives():
    with pytest.raises(ValidationError, match="not among objectives"):
        TrainConfig(schedule={"weights": {"embedding": [0, 1]}})


@pytest.mark.parametrize("progress", [-0.1, 1.5, float("nan")])
def test_schedule_rejects_progress_out_of_range(progress: float):
    with pytest.raises(ValueError, match="progress"):
        blend(ScheduleSpec(temperature=(4.0, 1.0)), progress)
