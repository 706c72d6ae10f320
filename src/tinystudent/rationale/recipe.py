"""The `rationale` recipe: YAML (safe_load only) validated into typed sections whose errors
name the offending key, like the classification and embedding recipes."""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from tinystudent.devices import DeviceName
from tinystudent.io import recipe_key
from tinystudent.rationale.sources import DEFAULT_INSTRUCTION
from tinystudent.rationale.train import RationaleTrainConfig
from tinystudent.recipe import read_yaml, validate_sections


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class DataSource(str, Enum):
    gsm_symbolic = "gsm_symbolic"
    reasoning_gym = "reasoning_gym"
    jsonl = "jsonl"


class RationaleSourceKind(str, Enum):
    dataset = "dataset"
    solver = "solver"
    transformers = "transformers"
    openai = "openai"


class RationaleData(_Strict):
    """Built-in gsm_symbolic, any reasoning-gym task (generated, seeded; difficulty set by its
    options), or JSONL files with question/answer/rationale."""

    source: DataSource = DataSource.gsm_symbolic
    task: str | None = Field(None, description="reasoning_gym: task name, e.g. chain_sum")
    task_options: dict[str, Any] = Field(
        default_factory=dict, description="reasoning_gym: the task's options, e.g. min_terms"
    )
    train_path: str | None = Field(None, description="jsonl: training rows")
    test_path: str | None = Field(None, description="jsonl: held-out rows")
    num_train: int = Field(512, ge=1, description="generated sources: training items")
    num_test: int = Field(200, ge=1, description="held-out items (generated sources: drawn)")
    seed: int = 0

    @model_validator(mode="after")
    def _paths(self) -> RationaleData:
        if self.source is DataSource.reasoning_gym and not self.task:
            raise ValueError("source reasoning_gym needs task (e.g. chain_sum)")
        if self.source is not DataSource.reasoning_gym and (self.task or self.task_options):
            raise ValueError("task and task_options belong to source reasoning_gym")
        if self.source is DataSource.jsonl:
            missing = [k for k in ("train_path", "test_path") if not getattr(self, k)]
            if missing:
                raise ValueError(f"source jsonl needs {' and '.join(missing)}")
        return self


class RationaleSourceSpec(_Strict):
    """Who writes the rationales: the dataset, a programmatic solver (reasoning_gym tasks: a
    stand-in for a large teacher), a local causal LM, or an OpenAI-compatible API."""

    source: RationaleSourceKind = RationaleSourceKind.dataset
    model: str = Field("smollm2-135m", description="local folder, smollm2-135m, or served name")
    base_url: str | None = Field(None, description="openai: endpoint (default $OPENAI_BASE_URL)")
    api_key_env: str = Field("OPENAI_API_KEY", description="environment variable with the key")
    num_samples: int = Field(4, ge=1, description="sampled rationales per question")
    temperature: float = Field(0.7, ge=0.0)
    top_p: float = Field(0.95, gt=0.0, le=1.0)
    max_new_tokens: int = Field(256, ge=1)
    batch_size: int = Field(8, ge=1, description="transformers: prompts per generate call")
    instruction: str = Field(DEFAULT_INSTRUCTION, description="teacher prompt with {question}")

    @field_validator("instruction")
    @classmethod
    def _instruction(cls, value: str) -> str:
        if "{question}" not in value:
            raise ValueError("must contain {question}")
        return value


class StudentModel(_Strict):
    model: str = Field("smollm2-135m", description="smollm2-135m or a local causal-LM folder")
    num_layers: int | None = Field(
        None, ge=1, description="keep only the first N decoder layers (a faster student)"
    )


class RationaleEval(_Strict):
    batch_size: int = Field(16, ge=1)
    max_new_tokens: int = Field(16, ge=1, description="answer and multitask: answers are short")
    cot_max_new_tokens: int = Field(192, ge=1, description="cot: rationale then answer")
    baseline: bool = Field(True, description="also score the untrained student")


class RationaleRecipe(_Strict):
    name: str = "rationale"
    data: RationaleData = RationaleData()
    rationales: RationaleSourceSpec = RationaleSourceSpec()
    student: StudentModel = StudentModel()
    train: RationaleTrainConfig = RationaleTrainConfig()
    evaluate: RationaleEval = RationaleEval()
    # Where the rationale LM, the student's training and its evaluation run; in no hash.
    device: DeviceName = "cpu"

    @model_validator(mode="after")
    def _solver_needs_gym(self) -> RationaleRecipe:
        if (
            self.rationales.source is RationaleSourceKind.solver
            and self.data.source is not DataSource.reasoning_gym
        ):
            raise ValueError("rationales.source solver needs data.source reasoning_gym")
        return self

    @model_validator(mode="after")
    def _knife_layers(self) -> RationaleRecipe:
        k = self.train.knife
        if (
            k
            and k.layers.value == "all"
            and k.teacher_layers not in (None, self.student.num_layers)
        ):
            raise ValueError(
                "train.knife.layers all matches every layer: teacher_layers must equal "
                "student.num_layers (or use layers: last)"
            )
        return self

    def section_hash(self, *sections: str) -> str:
        return recipe_key({s: getattr(self, s) for s in sections})

    def training_hash(self) -> str:
        """What the trained student depends on (the time limit and checkpoint cadence do not)."""
        train = self.train.model_dump(mode="json", exclude={"max_minutes", "checkpoint_every"})
        payload = {
            "data": self.data,
            "rationales": self.rationales,
            "student": self.student,
            "train": train,
        }
        return recipe_key(payload)


def parse_rationale_recipe(data: Any, source: str = "recipe") -> RationaleRecipe:
    return validate_sections(RationaleRecipe, data, source)


def load_rationale_recipe(path: str | Path) -> RationaleRecipe:
    return parse_rationale_recipe(read_yaml(path), str(path))
