"""The bench spec: data, ks and seeds, the teachers, students and baselines (docs/benchmark.md).

A spec is validated like a recipe (unknown keys and bad values name the field); a plain
recipe is benched under the protocol with its own teacher (or amalgamated teachers) and
student. `unit_recipe` turns one (k, seed) of a spec into the pipeline recipe that unit runs.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from tinystudent.devices import DeviceName
from tinystudent.errors import RecipeError
from tinystudent.io import recipe_key
from tinystudent.recipe import (
    DataSpec,
    LabelSpec,
    Recipe,
    StudentSpec,
    TeacherConfig,
    TeacherMember,
    check_teacher_kind,
    parse_recipe,
    read_yaml,
    validate_sections,
)
from tinystudent.teachers.amalgamate import AmalgamationSpec
from tinystudent.teachers.frozen import FrozenTeacherConfig
from tinystudent.train.config import TrainConfig

#: Test texts a --quick run scores (the split itself is the protocol's).
QUICK_TEST_TEXTS = 200
#: SetFit pair iterations in the protocols; the distilled peer's teacher must use the same
#: number to share the trained SetFit model through the peer cache.
SETFIT_ITERATIONS = 5
#: Teacher kinds whose `model` is a sentence encoder model2vec can distil from.
ENCODER_KINDS = ("finetune", "frozen", "setfit")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class BenchData(_Strict):
    """The dataset and its fixed test split (the k-shot sample varies with k and seed)."""

    dataset: str = "rotten_tomatoes"
    text_column: str = "text"
    label_column: str = "label"
    test_size: float | int = Field(2000, gt=0)
    split_seed: int = Field(0, ge=0)
    max_pool: int | None = Field(None, ge=0, description="cap on unlabeled pool texts used")


class BaselineSpec(BaseModel):
    """`kind` picks a baseline (tinystudent.baselines); other keys are its constructor options."""

    model_config = ConfigDict(extra="allow")
    kind: str

    @field_validator("kind")
    @classmethod
    def _known(cls, v: str) -> str:
        from tinystudent.baselines import BASELINES

        if v not in BASELINES:
            raise ValueError(f"unknown baseline {v!r}; choose from {sorted(BASELINES)}")
        return v

    @model_validator(mode="after")
    def _train_on(self) -> BaselineSpec:
        if self.train_on not in ("gold", "teacher"):
            raise ValueError(f"train_on: {self.train_on!r} is neither gold nor teacher")
        return self

    @property
    def train_on(self) -> str:
        """`gold` (the k examples) or `teacher`: the distilling teacher's hard labels over the
        transfer set the students learn from (the same teacher signal, without soft labels).
        An extra key, so specs without it keep their digest."""
        return str((self.model_extra or {}).get("train_on", "gold"))

    @property
    def options(self) -> dict[str, Any]:
        return {k: v for k, v in (self.model_extra or {}).items() if k != "train_on"}


class SpeedSpec(_Strict):
    """How speed is measured; teachers get fewer latency samples (an mpnet call is ~0.1 s)."""

    threads: list[int | None] = Field(default_factory=lambda: [1, None])
    texts: int = Field(512, ge=1, description="test texts cycled through")
    latency_n: int = Field(200, ge=1)
    teacher_latency_n: int = Field(40, ge=1)
    min_seconds: float = Field(2.0, gt=0)


class BenchAmalgamation(_Strict):
    """Every teacher amalgamated into one more teacher, `<name> (teacher)`: a recipe's
    `teachers` list benched. `labels` names the classes a teacher knows (default all)."""

    name: str = "amalgamated"
    labels: dict[str, list[str]] = Field(default_factory=dict)
    combine: AmalgamationSpec = AmalgamationSpec()


def _default_teachers() -> dict[str, TeacherConfig]:
    return {"minilm-l6": FrozenTeacherConfig(model="minilm-l6")}


def _gold_train() -> TrainConfig:
    # No unlabeled rows to hold out and a handful of texts: more epochs, small batches, CE only.
    return TrainConfig(epochs=30, batch_size=16, alpha=0.0, val_fraction=0.0, patience=30)


def _default_baselines() -> dict[str, BaselineSpec]:
    return {
        "tfidf-lr": BaselineSpec(kind="tfidf-lr"),
        "fasttext": BaselineSpec(kind="fasttext"),
        "model2vec-lr": BaselineSpec(kind="model2vec-lr"),
    }


class BenchSpec(_Strict):
    """A benchmark protocol: data, ks and seeds, the teachers, students and baselines."""

    name: str = "bench"
    data: BenchData = BenchData()
    ks: list[int] = Field(default_factory=lambda: [8, 64])
    seeds: list[int] = Field(default_factory=lambda: [0, 1, 2])
    teachers: dict[str, TeacherConfig] = Field(default_factory=_default_teachers)
    amalgamation: BenchAmalgamation | None = None
    headline: str | None = Field(None, description="teacher that %-of-teacher refers to")
    distill_from: list[str] | None = Field(None, description="teachers students learn from")
    students: dict[str, StudentSpec] = Field(
        default_factory=lambda: {"pqrnn": StudentSpec(kind="pqrnn")}
    )
    gold_students: bool = Field(True, description="also train each student on gold labels only")
    baselines: dict[str, BaselineSpec] = Field(default_factory=_default_baselines)
    train: TrainConfig = TrainConfig()
    gold_train: TrainConfig = Field(default_factory=_gold_train)
    speed: SpeedSpec = SpeedSpec()
    cache_dir: str | None = Field(None, description="embeddings etc. (default ~/.cache/...)")
    work_threads: int | Literal["auto"] | None = Field(
        1, description="torch threads for the untimed work; auto: 1 if the machine is busy"
    )
    budget_minutes: float | None = Field(None, gt=0, description="the run time this is sized for")
    device: DeviceName = "cpu"

    @field_validator("teachers", mode="before")
    @classmethod
    def _teacher_kinds(cls, v: Any) -> Any:
        return {n: check_teacher_kind(c) for n, c in v.items()} if isinstance(v, dict) else v

    @model_validator(mode="after")
    def _names(self) -> BenchSpec:
        if not self.teachers:
            raise ValueError("teachers: name at least one teacher")
        names = self.teacher_names
        if len(set(names)) != len(names):
            raise ValueError(f"amalgamation.name: {names[-1]!r} is already a teacher's name")
        for name in [self.headline, *(self.distill_from or [])]:
            if name is not None and name not in names:
                raise ValueError(f"{name!r} is not one of the teachers {sorted(names)}")
        for name in self.amalgamation.labels if self.amalgamation else {}:
            if name not in self.teachers:
                raise ValueError(f"amalgamation.labels: {name!r} is not one of the teachers")
        if not self.ks or not self.seeds:
            raise ValueError("ks and seeds must each hold at least one value")
        return self

    @property
    def teacher_names(self) -> list[str]:
        """Every teacher system: each configured teacher, then the amalgamated one if any."""
        return [*self.teachers, *([self.amalgamation.name] if self.amalgamation else [])]

    @property
    def headline_teacher(self) -> str:
        return self.headline or self.kd_teachers[0]

    @property
    def kd_teachers(self) -> list[str]:
        if self.distill_from is not None:
            return list(self.distill_from)
        return [self.amalgamation.name] if self.amalgamation else list(self.teachers)

    @property
    def reference(self) -> tuple[int, int]:
        """The (k, seed) unit whose models are measured for size and speed."""
        return max(self.ks), self.seeds[0]

    def cache_root(self) -> Path:
        if self.cache_dir:
            return Path(self.cache_dir).expanduser()
        return Path.home() / ".cache" / "tinystudent" / "bench"

    def digest(self) -> str:
        """Key of what the numbers depend on (not the speed settings or the budget); a spec
        without amalgamation keeps the digest it had before the field existed."""
        skip = {"speed", "budget_minutes", "cache_dir", "work_threads", "device"}
        if self.amalgamation is None:
            skip.add("amalgamation")
        return recipe_key(self, exclude=skip)


def unit_recipe(spec: BenchSpec, k: int, seed: int) -> Recipe:
    """The pipeline recipe of one (k, seed) unit: its data, every teacher as a member of
    `teachers` (amalgamated when the spec says so), labels cached in the bench cache, so the
    unit's run directory resumes stage by stage like any pipeline run."""
    d = spec.data
    labels = spec.amalgamation.labels if spec.amalgamation else {}
    members = [
        TeacherMember(name=name, labels=labels.get(name), config=cfg)
        for name, cfg in spec.teachers.items()
    ]
    return Recipe(
        name=f"{spec.name}-k{k}-seed{seed}",
        data=DataSpec(
            dataset=d.dataset,
            text_column=d.text_column,
            label_column=d.label_column,
            k=k,
            seed=seed,
            test_size=d.test_size,
            split_seed=d.split_seed,
            max_pool=d.max_pool,
        ),
        teachers=members,
        amalgamation=spec.amalgamation.combine if spec.amalgamation else None,
        label=LabelSpec(cache_dir=str(spec.cache_root())),
        train=spec.train.model_copy(update={"seed": seed}),
        device=spec.device,
    )


def student_recipe(spec: BenchSpec, unit: Recipe, student: str, teacher: str | None) -> Recipe:
    """The recipe one student system of a unit trains from: distilled from `teacher` (one
    of the teachers, or the amalgamated one), or on the gold labels alone (None)."""
    seed = unit.data.seed
    update: dict[str, Any] = {"student": spec.students[student]}
    if teacher is None:
        update.update(teachers=None, amalgamation=None, teacher=Recipe().teacher)
        update["train"] = spec.gold_train.model_copy(update={"seed": seed})
    elif teacher in spec.teachers:
        update.update(teachers=None, amalgamation=None, teacher=spec.teachers[teacher])
    return unit.model_copy(update=update)


def _encoder_model(configs: list[Any]) -> str | None:
    """The first sentence-encoder model among teacher configs (model2vec distils from it)."""
    for cfg in configs:
        if str(getattr(cfg, "kind", "finetune")) in ENCODER_KINDS:
            return str(cfg.model)
    return None


def spec_from_recipe(recipe: Recipe) -> BenchSpec:
    """Bench a plain recipe: its data, teacher(s), student and train sections, under the
    protocol; several teachers are benched one by one and amalgamated, as the recipe says."""
    from tinystudent.pipeline import member_names

    d = recipe.data
    if recipe.teachers is None:
        teachers: dict[str, Any] = {recipe.teacher.model: recipe.teacher}
        amalgamation = None
    else:
        names = member_names(recipe)
        teachers = {n: m.config for n, m in zip(names, recipe.teachers)}
        labels = {n: m.labels for n, m in zip(names, recipe.teachers) if m.labels}
        combine = recipe.amalgamation or AmalgamationSpec()
        amalgamation = BenchAmalgamation(
            name=f"amalgamated ({combine.method})", labels=labels, combine=combine
        )
    encoder = _encoder_model(list(teachers.values()))
    m2v = {"teacher": encoder} if encoder else {}
    return BenchSpec(
        name=recipe.name,
        data=BenchData(
            dataset=d.dataset,
            text_column=d.text_column,
            label_column=d.label_column,
            test_size=d.test_size,
            split_seed=d.split_seed,
            max_pool=d.max_pool,
        ),
        teachers=teachers,
        amalgamation=amalgamation,
        students={recipe.student.kind: recipe.student},
        baselines={
            **_default_baselines(),
            "model2vec-lr": BaselineSpec(kind="model2vec-lr", **m2v),
        },
        train=recipe.train,
    )


def _rt_spec() -> BenchSpec:
    """Rotten Tomatoes: 2,000 test texts, ~16k pool texts (reviews + plot-synopsis sentences)."""
    return BenchSpec(
        name="rt",
        data=BenchData(dataset="rotten_tomatoes", test_size=2000),
        teachers={
            "minilm-l6": FrozenTeacherConfig(model="minilm-l6"),
            "mpnet-base": FrozenTeacherConfig(model="mpnet-base"),
        },
        headline="mpnet-base",
        distill_from=["mpnet-base"],
        students={"pqrnn": StudentSpec(kind="pqrnn"), "bag": StudentSpec(kind="bag")},
        baselines={
            "tfidf-lr": BaselineSpec(kind="tfidf-lr"),
            "fasttext": BaselineSpec(kind="fasttext"),
            "model2vec-lr": BaselineSpec(kind="model2vec-lr", teacher="minilm-l6"),
            "model2vec-lr (mpnet)": BaselineSpec(kind="model2vec-lr", teacher="mpnet-base"),
            # The peers: SetFit with the MiniLM and the mpnet body on the gold examples (5 pair
            # iterations, not the library's 20, which cost 4x: ~20 min per k = 64 seed for
            # MiniLM on one thread), SetFit's own distilled student (mpnet SetFit, shared with
            # the row above through the peer cache, into paraphrase-MiniLM-L3 on 1,000 pool
            # texts), and model2vec's own classifier on the gold examples and on mpnet's
            # labels of the transfer set.
            "setfit": BaselineSpec(
                kind="setfit", model="minilm-l6", num_iterations=SETFIT_ITERATIONS
            ),
            "setfit (mpnet)": BaselineSpec(
                kind="setfit", model="mpnet-base", num_iterations=SETFIT_ITERATIONS
            ),
            "setfit-distilled": BaselineSpec(
                kind="setfit-distilled",
                teacher="mpnet-base",
                teacher_iterations=SETFIT_ITERATIONS,
                student="minilm-l3",
                n_unlabeled=1000,
                max_steps=200,
            ),
            "model2vec-clf": BaselineSpec(kind="model2vec-clf", teacher="minilm-l6"),
            "model2vec-clf (teacher labels)": BaselineSpec(
                kind="model2vec-clf", teacher="minilm-l6", train_on="teacher"
            ),
        },
        budget_minutes=200,  # ~90 before the mpnet SetFit peers (~110 more, peers_rt_mpnet)
    )


def _bbc_spec() -> BenchSpec:
    """BBC News: 5 topics, 2,225 long articles; the encoders read the first 128 tokens."""
    spec = _rt_spec().model_copy(deep=True)
    spec.name = "bbc"
    spec.data = BenchData(dataset="bbc_news", test_size=0.2)
    spec.budget_minutes = 120  # ~25 before the mpnet SetFit peers (long texts: slow steps)
    return spec


PROTOCOLS: dict[str, Callable[[], BenchSpec]] = {"rt": _rt_spec, "bbc": _bbc_spec}


def parse_bench(data: Any, source: str = "bench") -> BenchSpec:
    """A bench spec, or a plain pipeline recipe (told apart as `tinystudent check` does)."""
    from tinystudent.check import detect_kind

    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise RecipeError(f"{source}: a bench spec is a mapping, got {type(data).__name__}")
    kind, why = detect_kind(data)
    if kind == "bench":
        return validate_sections(BenchSpec, data, source)
    if kind != "pipeline":
        raise RecipeError(f"{source}: {kind} recipes cannot be benched ({why})")
    return spec_from_recipe(parse_recipe(data, source))


def load_bench(name_or_path: str | Path) -> BenchSpec:
    """A built-in protocol name (rt, bbc) or a YAML file."""
    if str(name_or_path) in PROTOCOLS:
        return PROTOCOLS[str(name_or_path)]()
    path = Path(name_or_path)
    if not path.exists():
        raise RecipeError(f"{path}: no such bench file (built-in protocols: {sorted(PROTOCOLS)})")
    return parse_bench(read_yaml(path, "bench"), str(path))


def quick_spec(spec: BenchSpec) -> BenchSpec:
    """A smoke-test version: two seeds, one epoch, a small pool and test set, short timings."""
    q = spec.model_copy(deep=True)
    q.seeds = spec.seeds[:2]
    q.train = spec.train.model_copy(update={"epochs": 1})
    q.gold_train = spec.gold_train.model_copy(update={"epochs": 2})
    q.data = spec.data.model_copy(update={"max_pool": min(spec.data.max_pool or 300, 300)})
    q.speed = SpeedSpec(
        threads=spec.speed.threads, texts=32, latency_n=5, teacher_latency_n=3, min_seconds=0.05
    )
    q.budget_minutes = None
    return q
