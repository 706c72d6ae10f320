"""The `embed-distill` recipe: YAML validated into typed sections; errors name the field.

Like the classification recipe (`tinystudent.recipe`), YAML is read with `safe_load` only and
the `student` section is the same: `kind` plus that student's options.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from tinystudent.embeddings.data import EmbedDataSpec
from tinystudent.embeddings.evaluate import EvalConfig
from tinystudent.embeddings.objectives import ObjectiveConfig
from tinystudent.embeddings.teacher import SentenceTeacherConfig
from tinystudent.embeddings.train import EmbedTrainConfig
from tinystudent.errors import RecipeError
from tinystudent.recipe import StudentSpec, _describe


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

    def training_hash(self) -> str:
        """Hash of what the trained student depends on: a rerun retrains only when it changes."""
        payload = {
            s: getattr(self, s).model_dump(mode="json")
            for s in ("teacher", "data", "objective", "train")
        }
        payload["student"] = {"kind": self.student.kind, **self.student.options}
        return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:16]


def parse_embed_recipe(data: Any, source: str = "recipe") -> EmbedRecipe:
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise RecipeError(f"{source}: a recipe is a mapping of sections, got {type(data).__name__}")
    try:
        return EmbedRecipe(**data)
    except ValidationError as e:
        lines = _describe(e).split("; ")
        raise RecipeError("\n".join(f"{source}: {line}" for line in lines)) from None


def load_embed_recipe(path: str | Path) -> EmbedRecipe:
    path = Path(path)
    if not path.exists():
        raise RecipeError(f"{path}: no such recipe file")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as e:
        raise RecipeError(f"{path}: not valid YAML ({e})") from None
    return parse_embed_recipe(data, str(path))
