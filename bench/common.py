"""What every benchmark records beside its numbers: machine, versions, commit, command."""

from __future__ import annotations

import statistics
import sys
from pathlib import Path
from typing import Any

from tinystudent.bench.environment import environment as bench_environment

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"


def environment() -> dict[str, Any]:
    """Machine, versions, commit of this checkout, command: as `tinystudent bench` records them."""
    return bench_environment(ROOT, " ".join([Path(sys.executable).name, *sys.argv]))


def mean_std(vals: list[float]) -> dict[str, float]:
    """Mean, sample std (0 for a single value) and count: each figure over seeds."""
    std = statistics.stdev(vals) if len(vals) > 1 else 0.0
    return {"mean": statistics.fmean(vals), "std": std, "n": len(vals)}
