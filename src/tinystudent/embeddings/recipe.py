"""The `embed-distill` recipe: YAML validated into typed sections; errors name the field.

Like the classification recipe (`tinystudent.recipe`), YAML is read with `safe_load` only and
the `student` section is the same: `kind` plus that student's options.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from tinystudent.devices import DeviceName
from tinystudent.embeddings.data import EmbedDataSpec
from tinystudent.embeddings.evaluate import EvalConfig
from tinystudent.embeddings.objectives import ObjectiveConfig
from tinystudent.embeddings.teacher import SentenceTeacherConfig
from tinystudent.embeddings.train import EmbedTrainConfig
from tinystudent.io import recipe_key
from tinystudent.recipe import StudentSpec, read_yaml, validate_sections


class EmbedRecipe(BaseModel):
    """A whole embedding distillation run."""

    model_config = ConfigDict(extra="forbid")

    name: str = "embed"
    teacher: SentenceTeacherConfig = SentenceTeacherConfig()
    data: EmbedDataSpec = EmbedDataSpec()
    student: StudentSpec = StudentSpec()
    objective: ObjectiveConfig = ObjectiveConfig()
    train: EmbedTrainConfig = EmbedTrainConfig()
    evaluate: EvalConfig = EvalConfig()
    cache_dir: str | None = Field(None, description="teacher-embedding cache (default: run/cache)")
    shard_size: int = Field(1024, ge=1, description="texts per cache shard")
    # Where the teacher encodes and the student trains; not in `training_hash` (where, not what).
    device: DeviceName = "cpu"

    def training_hash(self) -> str:
        """Hash of what the trained student depends on: a rerun retrains only when it changes."""
        sections = ("teacher", "data", "objective", "train")
        payload: dict[str, Any] = {s: getattr(self, s) for s in sections}
        payload["student"] = {"kind": self.student.kind, **self.student.options}
        return recipe_key(payload)


def parse_embed_recipe(data: Any, source: str = "recipe") -> EmbedRecipe:
    return validate_sections(EmbedRecipe, data, source)


def load_embed_recipe(path: str | Path) -> EmbedRecipe:
    return parse_embed_recipe(read_yaml(path), str(path))
