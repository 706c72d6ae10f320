"""Recipes: YAML validated into typed objects; an unknown key or a bad value names the field.

YAML is parsed with `safe_load` only: a recipe is data and can never execute code.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    SerializerFunctionWrapHandler,
    Tag,
    ValidationError,
    field_validator,
    model_serializer,
    model_validator,
)

from tinystudent.devices import DeviceName
from tinystudent.errors import RecipeError
from tinystudent.generate.run import GenerationConfig
from tinystudent.io import recipe_key
from tinystudent.teachers.amalgamate import AmalgamationSpec
from tinystudent.teachers.encoder import EncoderTeacherConfig
from tinystudent.teachers.frozen import FrozenTeacherConfig
from tinystudent.teachers.lexical import TfidfTeacherConfig
from tinystudent.teachers.llm import LLMTeacherConfig
from tinystudent.teachers.registry import TEACHERS
from tinystudent.teachers.setfit import SetFitTeacherConfig
from tinystudent.train.config import TrainConfig


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class DataSpec(_Strict):
    """Where the data comes from and how it is split."""

    dataset: str = "rotten_tomatoes"
    text_column: str = "text"
    label_column: str = "label"
    k: int = Field(64, ge=1, description="labeled examples per class")
    seed: int = Field(0, ge=0, description="seed of the k-shot sample")
    test_size: float | int = Field(0.2, gt=0, description="fraction, or a count of test texts")
    split_seed: int = Field(0, ge=0, description="seed of the fixed test split")
    max_pool: int | None = Field(None, ge=0, description="cap on unlabeled pool texts used")
    label_names: list[str] | None = Field(
        None, description="fixed label schema for files: any other label is an error"
    )
    on_conflict: Literal["error", "drop", "majority"] = Field(
        "error",
        description="a text given twice with two labels: error, drop its rows, or keep the "
        "majority label (dropped on a tie)",
    )

    multi_label: bool = Field(
        False, description="each text carries a set of labels (a list, or label_separator)"
    )
    label_separator: str | None = Field(
        None, min_length=1, description="multi-label CSV/TSV: the labels in one cell, e.g. '|'"
    )

    @model_validator(mode="after")
    def _separator_needs_multi(self) -> DataSpec:
        if self.label_separator is not None and not self.multi_label:
            raise ValueError("label_separator: only read with multi_label: true")
        return self

    @model_serializer(mode="wrap")
    def _hash_stable(self, handler: SerializerFunctionWrapHandler, info: Any) -> dict[str, Any]:
        """Leave the defaults of keys added later (`on_conflict`, `multi_label`,
        `label_separator`) out of stage hashes, so runs made before they existed keep their
        finished stages."""
        out: dict[str, Any] = handler(self)
        if (info.context or {}).get("stage_hash"):
            for key, default in (
                ("on_conflict", "error"),
                ("multi_label", False),
                ("label_separator", None),
            ):
                if key in out and out[key] == default:
                    out.pop(key)
        return out


class LabelSpec(_Strict):
    """Where soft labels are cached; share one directory across runs to reuse labels."""

    cache_dir: str | None = None
    shard_size: int = Field(1024, ge=1)


class StudentSpec(BaseModel):
    """`kind` picks the student; every other key is that student's option. The default,
    the bag, kept the most of its teacher in the ablation (bench/ablation.py)."""

    model_config = ConfigDict(extra="allow")
    kind: str = "bag"

    @model_validator(mode="after")
    def _check_options(self) -> StudentSpec:
        from tinystudent.students import STUDENTS, student_config

        if self.kind not in STUDENTS:
            raise ValueError(f"unknown student kind {self.kind!r}; choose from {sorted(STUDENTS)}")
        try:
            student_config(self.kind, self.options)
        except ValidationError as e:
            raise ValueError(_describe(e, prefix=f"{self.kind} option ")) from None
        return self

    @property
    def options(self) -> dict[str, Any]:
        return dict(self.model_extra or {})

    def resolved(self) -> dict[str, Any]:
        """`kind` and every option, defaults filled in (the user's own values kept as given)."""
        from tinystudent.students import student_config

        full = student_config(self.kind, self.options).model_dump(mode="json")
        return {"kind": self.kind, **full, **self.options}

    def hash_payload(self) -> dict[str, Any]:
        """`kind` and the options that differ from the defaults: the same student hashes the
        same whether its defaults are written out (a resolved recipe) or left implicit."""
        from tinystudent.students import STUDENTS, student_config

        given = student_config(self.kind, self.options).model_dump(mode="json")
        default = STUDENTS[self.kind].Config().model_dump(mode="json")
        changed = {k: v for k, v in self.options.items() if given.get(k) != default.get(k)}
        return {"kind": self.kind, **changed}


#: Teacher kinds a recipe can name; `finetune` (the default) needs no `kind` key.
TEACHER_KINDS = tuple(TEACHERS)  # the registry's kinds: one list, not two


def _teacher_kind(value: Any) -> str:
    if isinstance(value, dict):
        return str(value.get("kind", "finetune"))
    return str(getattr(value, "kind", "finetune"))


TeacherConfig = Annotated[
    Annotated[EncoderTeacherConfig, Tag("finetune")]
    | Annotated[FrozenTeacherConfig, Tag("frozen")]
    | Annotated[LLMTeacherConfig, Tag("llm")]
    | Annotated[SetFitTeacherConfig, Tag("setfit")]
    | Annotated[TfidfTeacherConfig, Tag("tfidf")],
    Discriminator(_teacher_kind),
]


def check_teacher_kind(value: Any) -> Any:
    """Name an unknown `kind`; drop `kind: finetune` (the fine-tuned config has no such key, so
    recipes without `kind` keep the section hash they had before kinds existed)."""
    if isinstance(value, dict) and "kind" in value:
        if value["kind"] not in TEACHER_KINDS:
            raise ValueError(
                f"unknown teacher kind {value['kind']!r} (choose from {list(TEACHER_KINDS)})"
            )
        if value["kind"] == "finetune":
            value = {k: v for k, v in value.items() if k != "kind"}
    return value


class TeacherMember(_Strict):
    """One of several teachers: a teacher section, plus the classes it knows (`labels`, default
    all: a teacher given part of the classes is fitted on their gold examples only) and a
    display `name`. Written flat in YAML: `- {kind: frozen, model: minilm-l6, labels: [a, b]}`."""

    name: str | None = None
    labels: list[str] | None = Field(None, min_length=1)
    config: TeacherConfig

    _kind = field_validator("config", mode="before")(check_teacher_kind)

    @model_validator(mode="before")
    @classmethod
    def _flat(cls, data: Any) -> Any:
        if isinstance(data, dict) and "config" not in data:
            rest = {k: v for k, v in data.items() if k not in ("name", "labels")}
            data = {**{k: data[k] for k in ("name", "labels") if k in data}, "config": rest}
        return data

    @field_validator("labels")
    @classmethod
    def _distinct(cls, v: list[str] | None) -> list[str] | None:
        if v is not None and len(set(v)) != len(v):
            raise ValueError(f"labels repeat a name: {v}")
        return v


class ScaleSpec(_Strict):
    """Where the work runs, not what it computes: kept out of every stage hash."""

    label_backend: Literal["local", "ray"] = "local"
    ray_address: str | None = Field(None, description="a Ray cluster (else $RAY_ADDRESS/local)")
    label_workers: int = Field(2, ge=1)
    label_batch_size: int = Field(64, ge=1)
    label_gpus: float | None = Field(
        None, ge=0, description="GPUs per Ray labeling worker (default: 1 with device cuda)"
    )
    nproc: int = Field(1, ge=1, description="student training processes (torch DDP)")
    ddp_backend: Literal["gloo", "nccl"] | None = None


class Recipe(_Strict):
    """A whole distillation run."""

    name: str = "run"
    data: DataSpec = DataSpec()
    teacher: TeacherConfig = EncoderTeacherConfig()
    # Several teachers amalgamated into one (instead of `teacher`); None keeps old recipes as
    # they were (their stage hashes never include these two sections).
    teachers: list[TeacherMember] | None = Field(None, min_length=1)
    amalgamation: AmalgamationSpec | None = None
    label: LabelSpec = LabelSpec()
    student: StudentSpec = StudentSpec()
    train: TrainConfig = TrainConfig()
    generate: GenerationConfig = GenerationConfig()
    scale: ScaleSpec = ScaleSpec()
    # Torch's float sums depend on how many threads split them, so the teacher's soft labels
    # and the student's weights move in their last bits with the core count. A pinned count
    # makes a run's figures the same on every machine; None uses all cores (torch's default).
    threads: int | None = Field(
        None, ge=1, description="torch threads for the whole run (pinned: same figures anywhere)"
    )
    # Where the teacher, the generator and the student's training run; like `threads` and
    # `scale`, kept out of every stage hash (where, not what: see tinystudent/devices.py).
    device: DeviceName = "cpu"

    _teacher_kind = field_validator("teacher", mode="before")(check_teacher_kind)

    @model_validator(mode="after")
    def _one_teacher_source(self) -> Recipe:
        if self.teachers is not None and "teacher" in self.model_fields_set:
            raise ValueError("give either teacher (one) or teachers (several), not both")
        if self.amalgamation is not None and self.teachers is None:
            raise ValueError("amalgamation needs a teachers list")
        if self.data.multi_label:
            check_multi_label(self)
        elif any(o.kind in MULTI_LABEL_OBJECTIVES for o in self.train.resolved_objectives()):
            raise ValueError("train.objectives: bce needs data.multi_label: true")
        return self

    @model_serializer(mode="wrap")
    def _dump_one_teacher_source(self, handler: SerializerFunctionWrapHandler) -> Any:
        """With `teachers`, the unused default `teacher` is left out of a dump, so a saved
        recipe (the run's recipe.json) parses again (found by a property test)."""
        data = handler(self)
        if self.teachers is not None and isinstance(data, dict):
            data.pop("teacher", None)
        return data

    @property
    def teacher_sections(self) -> tuple[str, ...]:
        """The sections that define the labelling teacher (one, or several amalgamated)."""
        return ("teacher",) if self.teachers is None else ("teachers", "amalgamation")

    def section_hash(self, *sections: str) -> str:
        """Hash of some sections: a stage reruns when a section it depends on changes."""

        payload: dict[str, Any] = {s: getattr(self, s) for s in sections}
        if "student" in payload:
            payload["student"] = self.student.hash_payload()
        if "train" in payload:
            payload["train"] = self.train.resolved()
        return recipe_key(payload, context={"stage_hash": True})


#: Objectives a multi-label run may use: bce on the logits; the rest read no class structure.
MULTI_LABEL_OBJECTIVES = ("bce",)
LABEL_FREE_OBJECTIVES = ("embedding", "contrastive", "hidden", "attention")


def check_multi_label(recipe: Recipe) -> None:
    """What `data.multi_label: true` works with: one frozen teacher (one logistic regression
    per label), the bce objective, one training process. Fills in `bce` as the objective
    when the recipe names none; errors name what works instead."""
    if recipe.teachers is not None:
        raise ValueError("teachers: multi-label runs take one teacher (kind: frozen)")
    if not isinstance(recipe.teacher, FrozenTeacherConfig):
        kind = getattr(recipe.teacher, "kind", "finetune")
        raise ValueError(
            f"teacher.kind: {kind} cannot label multi-label data, use kind: frozen (a frozen "
            "encoder with one logistic regression per label)"
        )
    if recipe.teacher.temperature != 1.0:
        raise ValueError("teacher.temperature: multi-label teachers give per-label sigmoids")
    train = recipe.train
    legacy = {"temperature", "alpha", "loss"} & train.model_fields_set
    if train.objectives is None:
        if legacy:
            raise ValueError(
                f"train: {sorted(legacy)} are single-label (kd/ce) settings, multi-label runs "
                "train with objectives: [{kind: bce}]"
            )
        from tinystudent.train.config import ObjectiveSpec

        train.objectives = [ObjectiveSpec(kind="bce")]
    kinds = [o.kind for o in train.objectives]
    bad = [k for k in kinds if k not in MULTI_LABEL_OBJECTIVES + LABEL_FREE_OBJECTIVES]
    if bad:
        raise ValueError(
            f"train.objectives: {bad} assume one label per text, multi-label runs use bce "
            f"(plus any of {list(LABEL_FREE_OBJECTIVES)})"
        )
    if "bce" not in kinds:
        raise ValueError("train.objectives: a multi-label run needs bce (the per-label targets)")
    if recipe.scale.nproc > 1 or recipe.scale.label_backend != "local":
        raise ValueError("scale: multi-label runs train in one process and label locally")
    if recipe.generate.enabled:
        raise ValueError("generate.enabled: not yet supported with data.multi_label")


def _without_union_tags(loc: list[Any]) -> list[Any]:
    """Drop the teacher union's tag from an error path: it is not a key the user wrote."""
    out: list[Any] = []
    for i, p in enumerate(loc):
        under_teacher = i >= 1 and loc[i - 1] == "teacher"
        under_teachers = i >= 2 and loc[i - 2] == "teachers"
        # a member's settings are written flat: hide the `config` level and its union tag
        in_member = i >= 3 and loc[i - 3] == "teachers" and loc[i - 1] == "config"
        if p == "config" and under_teachers:
            continue
        if p in TEACHER_KINDS and (under_teacher or under_teachers or in_member):
            continue
        out.append(p)
    return out


def _describe(err: ValidationError, prefix: str = "") -> str:
    """One line per problem, each naming the dotted path of the offending field."""
    lines = []
    for e in err.errors():
        parts = _without_union_tags(list(e["loc"]))
        loc = ".".join(str(p) for p in parts) or "(top level)"
        msg = "unknown key" if e["type"] == "extra_forbidden" else e["msg"]
        lines.append(f"{prefix}{loc}: {msg}")
    return "; ".join(lines)


def _format_errors(err: ValidationError, source: str) -> str:
    return "\n".join(f"{source}: {line}" for line in _describe(err).split("; "))


M = TypeVar("M", bound=BaseModel)


def validate_sections(model: type[M], data: Any, source: str) -> M:
    """Any recipe kind from parsed YAML: one `error:` line per bad field, naming the file."""
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise RecipeError(f"{source}: a recipe is a mapping of sections, got {type(data).__name__}")
    try:
        return model(**data)
    except ValidationError as e:
        raise RecipeError(_format_errors(e, source)) from None


def read_yaml(path: str | Path, what: str = "recipe") -> Any:
    """Safe-load a YAML file (never executes code); a missing file or bad YAML is one line."""
    path = Path(path)
    if not path.is_file():
        raise RecipeError(f"{path}: no such {what} file")
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(e, "problem", None) or str(e).splitlines()[0]
        raise RecipeError(f"{path}: not valid YAML{where} ({problem})") from None


def parse_recipe(data: Any, source: str = "recipe") -> Recipe:
    return validate_sections(Recipe, data, source)


def load_recipe(path: str | Path) -> Recipe:
    return parse_recipe(read_yaml(path), str(path))


def default_recipe() -> Recipe:
    """The embedded default (`tinystudent demo`): Rotten Tomatoes, k = 64, MiniLM -> bag."""
    return Recipe(
        name="rotten_tomatoes-k64",
        data=DataSpec(dataset="rotten_tomatoes", k=64, seed=0, test_size=2000),
        # 16 epochs, patience 4: the one lever that helped both students (bench/ablation.py).
        train=TrainConfig(epochs=16, patience=4),
        threads=2,
    )
