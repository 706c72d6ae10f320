"""Progress: which system, which seed, how long is left (one line per task)."""

from __future__ import annotations

import contextlib
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import numpy as np

Say = Callable[[str], None]


@dataclass
class Progress:
    """Prints one line per task with an estimate of the time left.

    The estimate starts from rough prior costs and corrects itself as tasks finish: a kind
    of task already seen is predicted by its own mean duration, the rest by their prior
    scaled with how far off the priors have been so far.
    """

    name: str
    plan: list[tuple[str, float]] = field(default_factory=list)  # (kind, prior seconds)
    say: Say = field(default=lambda msg: print(msg, file=sys.stderr, flush=True))
    done: dict[str, list[float]] = field(default_factory=dict)
    done_prior: float = 0.0
    start: float = field(default_factory=time.perf_counter)
    min_evidence: float = 120.0  # prior seconds that must be done before priors are rescaled

    def remaining(self) -> float:
        spent = sum(sum(v) for v in self.done.values())
        # How far off the priors have been so far: trusted once a couple of minutes' worth of
        # them has finished (a few instant tasks say little), bounded against odd tasks.
        trusted = self.done_prior >= self.min_evidence
        scale = min(20.0, max(0.05, spent / self.done_prior)) if trusted else 1.0
        left = 0.0
        seen = {k: len(v) for k, v in self.done.items()}
        for kind, prior in self.plan:
            if seen.get(kind, 0) > 0:
                seen[kind] -= 1  # this planned task is one of the finished ones
                continue
            durations = self.done.get(kind)
            left += float(np.mean(durations)) if durations else prior * scale
        return left

    @contextlib.contextmanager
    def task(self, kind: str, label: str) -> Iterator[None]:
        total = len(self.plan)
        n_done = sum(len(v) for v in self.done.values())
        elapsed = time.perf_counter() - self.start
        self.say(
            f"[{self.name} {n_done + 1}/{total} | {clock(elapsed)} elapsed, "
            f"~{clock(self.remaining())} left] {label}"
        )
        t0 = time.perf_counter()
        yield
        self.done.setdefault(kind, []).append(time.perf_counter() - t0)
        self.done_prior += dict(self.plan).get(kind, 0.0)


def clock(seconds: float) -> str:
    seconds = max(0, int(seconds))
    return (
        f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
        if seconds >= 3600
        else (f"{seconds // 60}m{seconds % 60:02d}s")
    )
