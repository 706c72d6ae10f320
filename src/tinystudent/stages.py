"""`stages.json`: the one resume scheme of every kind of run (pipeline, bench, embed, rationale).

A run directory records, per stage, the key (`io.recipe_key` of what the stage depends on,
with code versions folded in) its artifact was made with. A rerun skips a stage whose key
matches and whose artifact exists, and redoes it otherwise.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from tinystudent.io import read_json, write_json


class Stages:
    """The record of which stage of a run directory ran with which key."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self._stages_path = self.root / "stages.json"
        self.stages: dict[str, str] = (
            read_json(self._stages_path) if self._stages_path.exists() else {}
        )
        self.ran: dict[str, str] = {}

    def is_done(self, stage: str, key: str, artifact: Path) -> bool:
        return self.stages.get(stage) == key and artifact.exists()

    def adopt(self, stage: str, key: str, meta: Path, field: str) -> None:
        """Take over a stage of a run directory from before `stages.json`, which kept the
        stage's key in its artifact's own metadata (`meta[field]`): a stage not recorded here
        whose metadata names `key` is recorded as done with it, so such a directory resumes
        instead of redoing the work (persisted by the `mark` that follows)."""
        if stage in self.stages or not meta.is_file():
            return
        recorded = read_json(meta)
        if isinstance(recorded, dict) and recorded.get(field) == key:
            self.stages[stage] = key

    def mark(self, stage: str, key: str, ran: bool) -> None:
        self.stages[stage] = key
        self.ran[stage] = "ran" if ran else "skipped"
        write_json(self._stages_path, self.stages)

    def artifact(self, stage: str, key: str, path: Path, compute: Callable[[], Any]) -> Any:
        """A stage whose whole artifact is one JSON file: read back while `key` matches, else
        `compute()`d, written and recorded. What a caller keeps beside the models (the
        bench's per-system rows, for one) resumes through `stages.json` like every stage."""
        if self.is_done(stage, key, path):
            self.mark(stage, key, ran=False)
            return read_json(path)
        value = compute()
        write_json(path, value)
        self.mark(stage, key, ran=True)
        return value
