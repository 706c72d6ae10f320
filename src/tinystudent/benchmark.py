"""The benchmark protocol (docs/benchmark.md): every system side by side, same split, same process.

For each k (labeled examples per class) and seed: the teachers fit on the k gold examples;
each student is distilled on the teacher-labelled transfer set (gold + pool) and trained again
on the k gold labels alone (the no-KD twin); TF-IDF+LR, fastText and model2vec+LR see the gold
labels only. Accuracy and macro-F1 are averaged over seeds; parameters, size on disk and CPU
speed (batch-1 latency, batch-256 throughput, 1 thread and all threads, tokenisation
included) are measured once per system on the largest k's first seed, in this process, so
the ratios against the teacher compare like with like.

Frozen teachers make this affordable on a CPU: their encoder embeds every text once into a
persistent cache, and a head per (k, seed) then costs a second. A finished (k, seed) unit is
kept in `<out>/<name>.partial.json`, so an interrupted run resumes where it stopped.

    tinystudent bench rt                 # a built-in protocol (rt, bbc)
    tinystudent bench my_bench.yaml      # a bench spec, or a plain recipe (its teacher/student)
"""

from __future__ import annotations

import contextlib
import functools
import math
import os
import platform
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from tinystudent.data import Split, load_dataset, make_split
from tinystudent.errors import RecipeError
from tinystudent.evaluate import classification_metrics
from tinystudent.evaluate.speed import speed_profile
from tinystudent.io import json_digest, read_json, write_json, write_text
from tinystudent.pipeline import transfer_set
from tinystudent.recipe import (
    Recipe,
    StudentSpec,
    TeacherConfig,
    check_teacher_kind,
    parse_recipe,
    read_yaml,
    validate_sections,
)
from tinystudent.seed import seed_everything
from tinystudent.teachers.frozen import (
    FrozenEncoderTeacher,
    FrozenTeacherConfig,
    SentenceEncoder,
    single_thread_blas,
)
from tinystudent.teachers.registry import FitRequest, kind_of
from tinystudent.train.config import TrainConfig

Say = Callable[[str], None]


# ---------------------------------------------------------------------------------------------
# The spec
# ---------------------------------------------------------------------------------------------
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


def _default_teachers() -> dict[str, TeacherConfig]:
    return {"minilm-l6": FrozenTeacherConfig(model="minilm-l6")}


def _gold_train() -> TrainConfig:
    # No unlabeled rows to hold out and a handful of texts: more epochs, small batches, CE only.
    return TrainConfig(epochs=30, batch_size=16, alpha=0.0, val_fraction=0.0, patience=30)


class BenchSpec(_Strict):
    """A benchmark protocol: data, ks and seeds, the teachers, students and baselines."""

    name: str = "bench"
    data: BenchData = BenchData()
    ks: list[int] = Field(default_factory=lambda: [8, 64])
    seeds: list[int] = Field(default_factory=lambda: [0, 1, 2])
    teachers: dict[str, TeacherConfig] = Field(default_factory=_default_teachers)
    headline: str | None = Field(None, description="teacher that %-of-teacher refers to")
    distill_from: list[str] | None = Field(None, description="teachers students learn from")
    students: dict[str, StudentSpec] = Field(
        default_factory=lambda: {"pqrnn": StudentSpec(kind="pqrnn")}
    )
    gold_students: bool = Field(True, description="also train each student on gold labels only")
    baselines: dict[str, BaselineSpec] = Field(
        default_factory=lambda: {
            "tfidf-lr": BaselineSpec(kind="tfidf-lr"),
            "fasttext": BaselineSpec(kind="fasttext"),
            "model2vec-lr": BaselineSpec(kind="model2vec-lr"),
        }
    )
    train: TrainConfig = TrainConfig()
    gold_train: TrainConfig = Field(default_factory=_gold_train)
    speed: SpeedSpec = SpeedSpec()
    cache_dir: str | None = Field(None, description="embeddings etc. (default ~/.cache/...)")
    work_threads: int | Literal["auto"] | None = Field(
        1, description="torch threads for the untimed work; auto: 1 if the machine is busy"
    )
    budget_minutes: float | None = Field(None, gt=0, description="the run time this is sized for")

    @field_validator("teachers", mode="before")
    @classmethod
    def _teacher_kinds(cls, v: Any) -> Any:
        return {n: check_teacher_kind(c) for n, c in v.items()} if isinstance(v, dict) else v

    @model_validator(mode="after")
    def _names(self) -> BenchSpec:
        if not self.teachers:
            raise ValueError("teachers: name at least one teacher")
        for name in [self.headline, *(self.distill_from or [])]:
            if name is not None and name not in self.teachers:
                raise ValueError(f"{name!r} is not one of the teachers {sorted(self.teachers)}")
        if not self.ks or not self.seeds:
            raise ValueError("ks and seeds must each hold at least one value")
        return self

    @property
    def headline_teacher(self) -> str:
        return self.headline or (self.distill_from or list(self.teachers))[0]

    @property
    def kd_teachers(self) -> list[str]:
        return list(self.distill_from) if self.distill_from is not None else list(self.teachers)

    @property
    def reference(self) -> tuple[int, int]:
        """The (k, seed) unit whose models are measured for size and speed."""
        return max(self.ks), self.seeds[0]

    def cache_root(self) -> Path:
        if self.cache_dir:
            return Path(self.cache_dir).expanduser()
        return Path.home() / ".cache" / "tinystudent" / "bench"

    def digest(self) -> str:
        """Hash of what the numbers depend on (not the speed settings or the budget)."""
        skip = {"speed", "budget_minutes", "cache_dir", "work_threads"}
        dump = self.model_dump(mode="json", exclude=skip)
        return json_digest(dump)


def spec_from_recipe(recipe: Recipe) -> BenchSpec:
    """Bench a plain recipe: its data, teacher, student and train sections, under the protocol."""
    d = recipe.data
    teacher_name = recipe.teacher.model
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
        teachers={teacher_name: recipe.teacher},
        students={recipe.student.kind: recipe.student},
        baselines={
            "tfidf-lr": BaselineSpec(kind="tfidf-lr"),
            "fasttext": BaselineSpec(kind="fasttext"),
            "model2vec-lr": BaselineSpec(kind="model2vec-lr", teacher=teacher_name),
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
            # The peers: SetFit-MiniLM on the gold examples (5 pair iterations, not the
            # library's 20: 20 costs ~20 min per k = 64 seed on one thread), and model2vec's
            # own classifier on the gold examples and on mpnet's labels of the transfer set.
            "setfit": BaselineSpec(kind="setfit", model="minilm-l6", num_iterations=5),
            "model2vec-clf": BaselineSpec(kind="model2vec-clf", teacher="minilm-l6"),
            "model2vec-clf (teacher labels)": BaselineSpec(
                kind="model2vec-clf", teacher="minilm-l6", train_on="teacher"
            ),
        },
        budget_minutes=90,
    )


def _bbc_spec() -> BenchSpec:
    """BBC News: 5 topics, 2,225 long articles; the encoders read the first 128 tokens."""
    spec = _rt_spec().model_copy(deep=True)
    spec.name = "bbc"
    spec.data = BenchData(dataset="bbc_news", test_size=0.2)
    spec.budget_minutes = 25
    return spec


PROTOCOLS: dict[str, Callable[[], BenchSpec]] = {"rt": _rt_spec, "bbc": _bbc_spec}


def parse_bench(data: Any, source: str = "bench") -> BenchSpec:
    """A bench spec, or a plain recipe (no `teachers`/`students`/`ks`/`seeds` keys)."""
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise RecipeError(f"{source}: a bench spec is a mapping, got {type(data).__name__}")
    if not {"teachers", "students", "ks", "seeds", "baselines"} & set(data):
        return spec_from_recipe(parse_recipe(data, source))
    return validate_sections(BenchSpec, data, source)


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


QUICK_TEST_TEXTS = 200


# ---------------------------------------------------------------------------------------------
# Progress: which system, which seed, how long is left
# ---------------------------------------------------------------------------------------------
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
            f"[{self.name} {n_done + 1}/{total} | {_clock(elapsed)} elapsed, "
            f"~{_clock(self.remaining())} left] {label}"
        )
        t0 = time.perf_counter()
        yield
        self.done.setdefault(kind, []).append(time.perf_counter() - t0)
        self.done_prior += dict(self.plan).get(kind, 0.0)


def _clock(seconds: float) -> str:
    seconds = max(0, int(seconds))
    return (
        f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
        if seconds >= 3600
        else (f"{seconds // 60}m{seconds % 60:02d}s")
    )


# ---------------------------------------------------------------------------------------------
# Running one system
# ---------------------------------------------------------------------------------------------
def measure_speed(
    predict: Callable[[list[str]], Any],
    texts: list[str],
    threads: list[int | None],
    latency_n: int,
    min_seconds: float,
    all_threads: int,
) -> dict[str, dict[str, float]]:
    """`speed_profile` per thread setting (None: `all_threads`), BLAS pools limited as well."""
    from threadpoolctl import threadpool_limits

    out: dict[str, dict[str, float]] = {}
    for n in threads:
        with threadpool_limits(limits=n or all_threads):
            row = speed_profile(predict, texts, [n or all_threads], latency_n, min_seconds)
        out[f"threads={n or 'all'}"] = next(iter(row.values()))
    return out


def _stats(values: list[float]) -> dict[str, float]:
    arr = np.asarray([v for v in values if v is not None and not math.isnan(v)], dtype=float)
    if not len(arr):
        return {"mean": float("nan"), "std": float("nan"), "n": 0}
    std = float(arr.std(ddof=1)) if len(arr) > 1 else 0.0
    return {"mean": float(arr.mean()), "std": std, "n": int(len(arr))}


class _Teachers:
    """Loads each teacher's encoder once; frozen heads are refit per (k, seed) in a second."""

    def __init__(self, spec: BenchSpec, label_names: list[str]) -> None:
        self.spec = spec
        self.label_names = label_names
        self._encoders: dict[str, SentenceEncoder] = {}

    def encoder(self, name: str) -> SentenceEncoder:
        cfg = self.spec.teachers[name]
        assert isinstance(cfg, FrozenTeacherConfig)
        if name not in self._encoders:
            self._encoders[name] = SentenceEncoder.from_pretrained(
                cfg.model,
                cfg.max_length,
                cfg.normalize,
                cfg.batch_size,
                cfg.embed_cache_dir or self.spec.cache_root() / "embeddings",
                cfg.trust_remote_code,
            )
        return self._encoders[name]

    def fit(self, name: str, split: Split, seed: int) -> tuple[Any, dict[str, Any]]:
        """Any kind through the registry; a frozen teacher reuses its loaded encoder."""
        cfg = self.spec.teachers[name]
        if isinstance(cfg, FrozenTeacherConfig):  # not a kind switch: the encoder is shared
            teacher = FrozenEncoderTeacher(self.encoder(name), self.label_names, cfg)
            return teacher, teacher.fit(split.train_texts, split.train_labels, seed)
        kind = kind_of(cfg)
        request = FitRequest(
            self.label_names,
            cfg,
            split.train_texts,
            split.train_labels,
            seed,
            self.spec.cache_root() / kind.cache,
            None,
        )
        fitted, log = kind.fit(request)
        return fitted, log.get("fit", log)

    def predict(self, teacher: Any, texts: list[str]) -> np.ndarray:
        """Probabilities through the shared soft-label cache (keyed by the teacher's
        fingerprint, so every fitted head gets its own rows)."""
        from tinystudent.label import label_texts

        probs, _ = label_texts(teacher, texts, self.spec.cache_root() / "labels")
        return probs

    def timed_predict(self, name: str, teacher: Any) -> Callable[[list[str]], np.ndarray]:
        """What a user pays per call: the model runs, no cache of per-text work."""
        return kind_of(self.spec.teachers[name]).timed(teacher)

    def size(self, name: str, teacher: Any) -> tuple[int, int]:
        size = kind_of(self.spec.teachers[name]).size(teacher, None)
        return int(teacher.num_params()), size


def _student_sizes(student: Any) -> tuple[int, int]:
    from tinystudent.students.int8 import save_int8

    with tempfile.TemporaryDirectory(prefix="tinystudent-bench-") as tmp:
        student.save(tmp)
        fp32 = (Path(tmp) / "student.safetensors").stat().st_size
        int8 = save_int8(student, Path(tmp) / "int8.safetensors")
    return fp32, int8


def _baseline(spec: BaselineSpec, cache_root: Path, seed: int) -> Any:
    from tinystudent.baselines import BASELINES

    options = {"seed": seed, **spec.options}
    if spec.kind == "model2vec-lr":  # distilling the static model takes minutes: once
        options.setdefault("cache_dir", str(cache_root / "model2vec"))
    if BASELINES[spec.kind].content_cached:  # trained peers are cached by content key
        options.setdefault("cache_dir", str(cache_root))
    return BASELINES[spec.kind](**options)


# ---------------------------------------------------------------------------------------------
# The protocol
# ---------------------------------------------------------------------------------------------
def _splits(spec: BenchSpec, quick: bool) -> tuple[list[str], dict[tuple[int, int], Split]]:
    d = spec.data
    ds = load_dataset(d.dataset, d.text_column, d.label_column)
    splits: dict[tuple[int, int], Split] = {}
    for k in spec.ks:
        for seed in spec.seeds:
            split = make_split(ds, k, seed, d.test_size, d.split_seed)
            if d.max_pool is not None:
                split.pool = split.pool[: d.max_pool]
            if quick:
                split.test_texts = split.test_texts[:QUICK_TEST_TEXTS]
                split.test_labels = split.test_labels[:QUICK_TEST_TEXTS]
            splits[(k, seed)] = split
    return list(ds.label_names), splits


def _plan(unit: BenchSpec, n_transfer: int, measure: bool) -> list[tuple[str, float]]:
    """Prior costs of one (k, seed) unit in seconds on a 2-core CPU; the progress display
    replaces them with measured durations as tasks finish."""
    k = unit.ks[0]
    plan: list[tuple[str, float]] = [("teacher", 5.0)] * len(unit.teachers)
    for s in unit.students:
        plan += [(f"kd:{s}", unit.train.epochs * n_transfer / 800)] * len(unit.kd_teachers)
        if unit.gold_students:
            plan.append((f"gold:{s}", 5.0 + k))
    plan += [(f"baseline:{b}", 10.0) for b in unit.baselines]
    if measure:
        n_students = len(unit.students) * (len(unit.kd_teachers) + unit.gold_students)
        plan += [("speed:teacher", 150.0)] * len(unit.teachers)
        plan += [("speed", 25.0)] * (n_students + len(unit.baselines))
    return plan


def embed_all(teachers: _Teachers, texts: list[str], progress: Progress) -> dict[str, Any]:
    """Fill the embedding cache of every frozen teacher with every text the protocol uses."""
    from tinystudent.label.embeddings import embed_texts

    out: dict[str, Any] = {}
    frozen = [n for n, c in teachers.spec.teachers.items() if isinstance(c, FrozenTeacherConfig)]
    missing: dict[str, int] = {}
    for name in frozen:
        encoder = teachers.encoder(name)
        cache = encoder.open_cache()
        missing[name] = sum(1 for t in texts if cache.get(t) is None)
        # Prior: ~2e9 parameter-passes per second on two cores (MiniLM ~90/s, mpnet ~18/s).
        prior = missing[name] * encoder.num_params() / 2e9
        progress.plan.insert(0, (f"embed:{name}", prior))
    for name in frozen:
        encoder = teachers.encoder(name)
        cache = encoder.open_cache()
        label = f"embedding {missing[name]:,} of {len(texts):,} texts with {name} (once, cached)"
        start = time.perf_counter()
        with progress.task(f"embed:{name}", label):
            _, stats = embed_texts(encoder, texts, cache, desc=f"embed {name}")
        out[name] = {
            "texts": stats.total,
            "computed": stats.computed,
            "cached": stats.hits,
            "seconds": time.perf_counter() - start,
            "texts_per_second": stats.computed / stats.seconds if stats.computed else None,
            "encoder_fingerprint": encoder.fingerprint,
        }
    return out


@dataclass
class _Unit:
    """One (k, seed): every system trained and scored; measured too when `measure`.

    `save` is called after each system with what is done so far; `resumed` (what an
    interrupted call saved) lets systems already finished be skipped. Teachers are always
    refit: they take a second from cached embeddings and the students need their labels.
    """

    spec: BenchSpec
    k: int
    seed: int
    split: Split
    teachers: _Teachers
    progress: Progress
    measure: bool
    all_threads: int
    resumed: dict[str, Any] | None = None
    save: Callable[[list[dict[str, Any]], dict[str, Any]], None] | None = None
    rows: list[dict[str, Any]] = field(default_factory=list)
    systems: dict[str, dict[str, Any]] = field(default_factory=dict)
    teacher_acc: dict[str, float] = field(default_factory=dict)
    teacher_probs: dict[str, np.ndarray] = field(default_factory=dict)
    teacher_test_pred: dict[str, np.ndarray] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.old_rows = {r["system"]: r for r in (self.resumed or {}).get("rows", [])}
        self.old_systems: dict[str, Any] = dict((self.resumed or {}).get("systems", {}))
        self.speed_texts = self.split.test_texts[: self.spec.speed.texts]
        pos = f"({self.spec.seeds.index(self.seed) + 1}/{len(self.spec.seeds)})"
        self.tag = f"k={self.k} seed {self.seed} {pos}"
        self.transfer, self.transfer_labels = transfer_set(self.split)
        self.y_test = self.split.test_labels
        self.headline = self.spec.headline_teacher

    def run(self) -> tuple[list[dict[str, Any]], dict[str, dict[str, Any]]]:
        # Teachers first: every other system is compared with them.
        order = [self.headline] + [t for t in self.spec.teachers if t != self.headline]
        for name in order:
            self.teacher(name)
        for sname in self.spec.students:
            for tname in self.spec.kd_teachers:
                self.student(sname, tname)
            if self.spec.gold_students:
                self.student(sname, None)
        for bname, bspec in self.spec.baselines.items():
            self.baseline(bname, bspec)
        return self.rows, self.systems

    def finished(self, name: str) -> bool:
        """Reuse a system saved by an interrupted run (its row, and its speed if measured)."""
        if name not in self.old_rows or (self.measure and name not in self.old_systems):
            return False
        self.rows.append(self.old_rows[name])
        if self.measure:
            self.systems[name] = self.old_systems[name]
        return True

    def commit(self) -> None:
        if self.save is not None:
            self.save(self.rows, self.systems)

    def record(self, name: str, probs: np.ndarray, ref_teacher: str, **extra: Any) -> None:
        row: dict[str, Any] = {"k": self.k, "seed": self.seed, "system": name}
        row.update(classification_metrics(self.y_test, probs))
        if ref_teacher in self.teacher_acc:
            row["pct_of_teacher"] = 100 * row["accuracy"] / self.teacher_acc[ref_teacher]
            agree = probs.argmax(1) == self.teacher_test_pred[ref_teacher]
            row["agreement_with_teacher"] = float(agree.mean())
        row["reference_teacher"] = ref_teacher
        row.update(extra)
        self.rows.append(row)

    def speed(self, predict: Callable[[list[str]], Any], teacher: bool = False) -> dict[str, Any]:
        sp = self.spec.speed
        n = sp.teacher_latency_n if teacher else sp.latency_n
        return measure_speed(
            predict, self.speed_texts, sp.threads, n, sp.min_seconds, self.all_threads
        )

    def teacher(self, name: str) -> None:
        """Fit one teacher, score it, keep its transfer-set labels; time it when measuring."""
        split = self.split
        with self.progress.task(
            "teacher", f"{self.tag}: teacher {name} (fit on {len(split.train_texts)})"
        ):
            t0 = time.perf_counter()
            teacher, fit = self.teachers.fit(name, split, self.seed)
            test_p = self.teachers.predict(teacher, split.test_texts)
            self.teacher_acc[name] = classification_metrics(self.y_test, test_p)["accuracy"]
            self.teacher_test_pred[name] = test_p.argmax(1)
            if name in self.spec.kd_teachers:
                self.teacher_probs[name] = self.teachers.predict(teacher, self.transfer)
            info = {"fit": fit, "seconds": time.perf_counter() - t0}
            info["mean_max_prob"] = float(test_p.max(1).mean())
            self.record(f"{name} (teacher)", test_p, self.headline, role="teacher", **info)
        system = f"{name} (teacher)"
        if self.measure and system in self.old_systems:
            self.systems[system] = self.old_systems[system]
        elif self.measure:
            label = f"{self.tag}: timing teacher {name} (encoder included)"
            with self.progress.task("speed:teacher", label):
                params, size = self.teachers.size(name, teacher)
                self.systems[system] = {
                    "role": "teacher",
                    "kind": getattr(self.spec.teachers[name], "kind", "finetune"),
                    "model": self.spec.teachers[name].model,
                    "params": params,
                    "size_bytes": size,
                    "int8_bytes": None,
                    "speed": self.speed(self.teachers.timed_predict(name, teacher), teacher=True),
                }
        del teacher
        self.commit()

    def student(self, sname: str, tname: str | None) -> None:
        """One student, distilled from teacher `tname` (None: trained on gold labels only)."""
        from tinystudent.students.int8 import dynamic_int8

        gold = tname is None
        name = f"{sname} (gold only)" if gold else f"{sname} (KD {tname})"
        kind = f"gold:{sname}" if gold else f"kd:{sname}"
        n = len(self.split.train_texts) if gold else len(self.transfer)
        if self.finished(name):
            return
        with self.progress.task(kind, f"{self.tag}: student {name} on {n:,} texts"):
            student, result = self._train_student(sname, tname)
            p = student.predict_proba(self.split.test_texts)
            fast = dynamic_int8(student)
            q = fast.predict_proba(self.split.test_texts)
            self.record(
                name,
                p,
                self.headline if gold else tname or self.headline,
                role="student-gold" if gold else "student",
                int8_accuracy=classification_metrics(self.y_test, q)["accuracy"],
                best_epoch=result.best_epoch,
                params=student.num_params(),
                seconds=result.seconds,
            )
        if self.measure:
            with self.progress.task("speed", f"{self.tag}: timing {name} (fp32 and int8)"):
                fp32, int8 = _student_sizes(student)
                self.systems[name] = {
                    "role": "student-gold" if gold else "student",
                    "kind": self.spec.students[sname].kind,
                    "options": self.spec.students[sname].options,
                    "teacher": tname,
                    "params": student.num_params(),
                    "size_bytes": fp32,
                    "int8_bytes": int8,
                    "speed": self.speed(student.predict_proba),
                    "int8_speed": self.speed(fast.predict_proba),
                }
        self.commit()

    def _train_student(self, sname: str, tname: str | None) -> tuple[Any, Any]:
        from tinystudent.students import build_student
        from tinystudent.train import train_student

        sspec, split = self.spec.students[sname], self.split
        seed_everything(self.seed)
        student = build_student(sspec.kind, sspec.options, split.label_names)
        if tname is None:
            texts, labels = split.train_texts, split.train_labels
            probs = np.eye(len(split.label_names), dtype=np.float32)[labels]
            cfg = self.spec.gold_train.model_copy(update={"seed": self.seed})
        else:
            texts, labels = self.transfer, self.transfer_labels
            probs = self.teacher_probs[tname]
            cfg = self.spec.train.model_copy(update={"seed": self.seed})
        return student, train_student(student, texts, probs, labels, cfg)

    def baseline(self, bname: str, bspec: BaselineSpec) -> None:
        """One non-distilled baseline, on gold labels or on the teacher's hard labels."""
        if self.finished(bname):
            return
        split = self.split
        with self.progress.task(f"baseline:{bname}", f"{self.tag}: baseline {bname}"):
            t0 = time.perf_counter()
            model = _baseline(bspec, self.spec.cache_root(), self.seed)
            texts, labels, ref = split.train_texts, split.train_labels, self.headline
            if bspec.train_on == "teacher":  # the distilling teacher's labels, hard
                ref = self.spec.kd_teachers[0]
                texts, labels = self.transfer, self.teacher_probs[ref].argmax(1).tolist()
            if model.uses_pool:  # e.g. setfit-distilled: the gold set teaches, the pool is used
                model.pool = self.transfer[len(split.train_texts) :]
            with single_thread_blas():  # CV fits of small LRs; see single_thread_blas
                model.fit(texts, labels, len(split.label_names))
                p = model.predict_proba(split.test_texts)
            self.record(
                bname,
                p,
                ref,
                role="baseline",
                trained_on=f"{bspec.train_on}+pool" if model.uses_pool else bspec.train_on,
                train_texts=len(texts) + getattr(model, "pool_used", 0),
                params=model.num_params(),
                seconds=time.perf_counter() - t0,
            )
        if self.measure:
            with self.progress.task("speed", f"{self.tag}: timing {bname}"):
                self.systems[bname] = {
                    "role": "baseline",
                    "kind": bspec.kind,
                    "options": bspec.options,
                    "params": model.num_params(),
                    "size_bytes": model.size_bytes(),
                    "int8_bytes": None,
                    "speed": self.speed(model.predict_proba),
                }
        self.commit()


def _run_unit(
    spec: BenchSpec,
    k: int,
    seed: int,
    split: Split,
    teachers: _Teachers,
    progress: Progress,
    measure: bool,
    all_threads: int,
    resumed: dict[str, Any] | None = None,
    save: Callable[[list[dict[str, Any]], dict[str, Any]], None] | None = None,
) -> tuple[list[dict[str, Any]], dict[str, dict[str, Any]]]:
    """One (k, seed) unit's rows and measured systems (see `_Unit`)."""
    unit = _Unit(spec, k, seed, split, teachers, progress, measure, all_threads, resumed, save)
    return unit.run()


def summarise(spec: BenchSpec, rows: list[dict[str, Any]], systems: dict[str, Any]) -> None:
    """Mean ± std over seeds per system and k, and speed ratios against the headline teacher."""
    names = list(dict.fromkeys(r["system"] for r in rows))
    for name in names:
        entry = systems.setdefault(
            name, {"role": next(r["role"] for r in rows if r["system"] == name)}
        )
        by_k: dict[str, Any] = {}
        for k in spec.ks:
            rs = [r for r in rows if r["system"] == name and r["k"] == k]
            metrics = ["accuracy", "macro_f1", "pct_of_teacher", "agreement_with_teacher"]
            if any("int8_accuracy" in r for r in rs):
                metrics.append("int8_accuracy")
            by_k[str(k)] = {m: _stats([r.get(m, float("nan")) for r in rs]) for m in metrics}
        entry["by_k"] = by_k
    head = systems.get(f"{spec.headline_teacher} (teacher)", {})
    for entry in systems.values():
        if "speed" not in entry or "speed" not in head:
            continue
        for setting, row in entry["speed"].items():
            base = head["speed"].get(setting, {}).get("throughput_tps")
            if base:
                row["x_teacher"] = row["throughput_tps"] / base
        if entry.get("params") and head.get("params"):
            entry["x_smaller_than_teacher"] = head["params"] / entry["params"]


def compare(systems: dict[str, Any], ks: list[int]) -> dict[str, Any]:
    """Per k: the most accurate distilled student against every baseline and its gold-only twin
    (accuracy difference, single-thread throughput ratio), and the share of its teacher kept."""

    def acc(name: str, k: int) -> float:
        return float(systems[name]["by_k"][str(k)]["accuracy"]["mean"])

    def tps(name: str) -> float | None:
        row = (systems[name].get("speed") or {}).get("threads=1")
        return float(row["throughput_tps"]) if row else None

    out: dict[str, Any] = {}
    students = [n for n, e in systems.items() if e["role"] == "student"]
    others = [n for n, e in systems.items() if e["role"] in ("baseline", "student-gold")]
    for k in ks:
        if not students:
            break
        best = max(students, key=lambda n: acc(n, k))
        vs = {}
        for other in others:
            mine, theirs = tps(best), tps(other)
            vs[other] = {
                "accuracy_diff": acc(best, k) - acc(other, k),
                "throughput_ratio": mine / theirs if mine and theirs else None,
            }
        out[str(k)] = {
            "best_student": best,
            "accuracy": acc(best, k),
            "pct_of_teacher": systems[best]["by_k"][str(k)]["pct_of_teacher"]["mean"],
            "teacher": systems[best].get("teacher"),
            "vs": vs,
        }
    return out


def _environment() -> dict[str, Any]:
    """Machine, versions, commit and command (bench/common.py's is used by `make bench`)."""

    def version(pkg: str) -> str | None:
        try:
            return metadata.version(pkg)
        except metadata.PackageNotFoundError:
            return None

    try:
        commit: str | None = subprocess.run(
            ["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        commit = None
    return {
        "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "command": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]),
        "git_commit": commit,
        "machine": {
            "platform": platform.platform(),
            "processor": platform.processor() or platform.machine(),
            "cpus": os.cpu_count(),
        },
        "versions": {
            p: version(p)
            for p in [
                "tinystudent",
                "torch",
                "transformers",
                "numpy",
                "scikit-learn",
                "fasttext-wheel",
                "model2vec",
            ]
        },
        "python": platform.python_version(),
    }


def work_threads(setting: int | Literal["auto"] | None) -> int:
    """Torch threads for training and embedding (timings set their own).

    On a shared machine intra-op threads wait on each other: with the load above the core
    count, one thread trained a bag student 5x faster than two and encoded ~1.5x faster.
    """
    import torch

    cpus = os.cpu_count() or 1
    if setting == "auto":
        return 1 if os.getloadavg()[0] >= cpus else torch.get_num_threads()
    return int(setting) if setting else torch.get_num_threads()


@contextlib.contextmanager
def _torch_threads(n: int) -> Iterator[None]:
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def usable_cores() -> int:
    """The cores this process may run on: what "all threads" means in the speed table."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def run_benchmark(
    spec: BenchSpec,
    out_dir: str | Path,
    quick: bool = False,
    environment: dict[str, Any] | None = None,
    say: Say | None = None,
) -> dict[str, Any]:
    """Run (or resume) the protocol; writes `<out>/<name>.json` and `<name>.md`, returns the doc."""

    start = time.perf_counter()
    if quick:
        spec = quick_spec(spec)
    all_threads = usable_cores()  # not torch's default, which OMP_NUM_THREADS may have lowered
    threads = work_threads(spec.work_threads)
    with _torch_threads(threads):
        doc = _run(spec, Path(out_dir), quick, say, all_threads)
    doc["budget"].update(
        seconds=time.perf_counter() - start, work_threads=threads, torch_threads=all_threads
    )
    doc["environment"] = environment or _environment()
    write_json(Path(out_dir) / f"{spec.name}.json", doc)
    write_text(Path(out_dir) / f"{spec.name}.md", render_markdown(doc))
    (Path(out_dir) / f"{spec.name}.partial.json").unlink(missing_ok=True)
    return doc


def _run(
    spec: BenchSpec, out: Path, quick: bool, say: Say | None, all_threads: int
) -> dict[str, Any]:
    """The protocol proper; `run_benchmark` wraps it in the thread settings and writes it."""
    out.mkdir(parents=True, exist_ok=True)
    partial_path = out / f"{spec.name}.partial.json"
    label_names, splits = _splits(spec, quick)
    ref = spec.reference
    n_transfer = len(transfer_set(splits[ref])[0])
    load_before = os.getloadavg()
    done, current = _resume_state(partial_path, spec, quick)
    todo = [(k, seed) for k in spec.ks for seed in spec.seeds if f"{k}/{seed}" not in done]
    progress = _progress(spec, todo, n_transfer, say, done, current)

    # Every text any unit shows a teacher, embedded once per encoder before the per-seed work.
    teachers = _Teachers(spec, label_names)
    t0 = time.perf_counter()
    embedding = embed_all(teachers, _protocol_texts(splits), progress) if todo else {}
    embed_seconds = time.perf_counter() - t0

    def save(current: dict[str, Any] | None) -> None:
        state = {"digest": spec.digest(), "quick": quick, "units": done, "current": current}
        write_json(partial_path, state)

    def save_current(key: str, rows: list[dict[str, Any]], systems: dict[str, Any]) -> None:
        save({"key": key, "rows": rows, "systems": systems})

    for k, seed in todo:
        key = f"{k}/{seed}"
        t_unit = time.perf_counter()
        resumed = current if current and current.get("key") == key else None
        unit_rows, unit_systems = _run_unit(
            spec,
            k,
            seed,
            splits[(k, seed)],
            teachers,
            progress,
            (k, seed) == ref,
            all_threads,
            resumed,
            functools.partial(save_current, key),
        )
        done[key] = {
            "rows": unit_rows,
            "systems": unit_systems,
            "seconds": time.perf_counter() - t_unit,
        }
        save(None)
    doc = _document(spec, quick, label_names, splits[ref], n_transfer, done)
    doc["embedding"] = embedding
    doc["budget"] = {
        "target_minutes": spec.budget_minutes,
        "embedding_seconds": embed_seconds,
        "unit_seconds": {k: u["seconds"] for k, u in done.items()},
        "load_average_before": list(load_before),
        "load_average_after": list(os.getloadavg()),
    }
    return doc


def _resume_state(
    partial_path: Path, spec: BenchSpec, quick: bool
) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """(finished units, the unit an interrupted run was in the middle of) from the partial
    file, when it was written by this very spec; nothing otherwise."""
    if partial_path.exists():
        saved = read_json(partial_path)
        if saved.get("digest") == spec.digest() and saved.get("quick") == quick:
            return saved["units"], saved.get("current")
    return {}, None


def _progress(
    spec: BenchSpec,
    todo: list[tuple[int, int]],
    n_transfer: int,
    say: Say | None,
    done: dict[str, Any],
    current: dict[str, Any] | None,
) -> Progress:
    """The progress display, planned over the units still to run; says what is resumed."""
    plan: list[tuple[str, float]] = []
    for k, seed in todo:
        unit = spec.model_copy(update={"ks": [k], "seeds": [seed]})
        plan += _plan(unit, n_transfer, measure=(k, seed) == spec.reference)
    progress = Progress(spec.name, plan)
    if say is not None:
        progress.say = say
    if done or current:
        n_sys = len((current or {}).get("rows", []))
        progress.say(
            f"[{spec.name}] resuming: {len(done)} (k, seed) units already done"
            + (f", {n_sys} systems of unit k/seed {current['key']}" if current else "")
        )
    return progress


def _protocol_texts(splits: dict[tuple[int, int], Split]) -> list[str]:
    """Every transfer and test text of every unit, once, in first-seen order."""
    texts: list[str] = []
    for split in splits.values():
        texts += transfer_set(split)[0] + split.test_texts
    return list(dict.fromkeys(texts))


def _document(
    spec: BenchSpec,
    quick: bool,
    label_names: list[str],
    ref_split: Split,
    n_transfer: int,
    done: dict[str, Any],
) -> dict[str, Any]:
    """The result document: every unit's rows, the systems, their summary and comparison."""
    rows = [r for u in done.values() for r in u["rows"]]
    systems: dict[str, Any] = {}
    for u in done.values():
        systems.update(u["systems"])
    summarise(spec, rows, systems)
    ref = spec.reference
    return {
        "benchmark": "protocol",
        "protocol": spec.name,
        "quick": quick,
        "spec": spec.model_dump(mode="json"),
        "dataset": {
            "name": spec.data.dataset,
            "label_names": label_names,
            "test_size": len(ref_split.test_texts),
            "transfer_size": n_transfer,
            "pool_size": len(ref_split.pool),
            "majority_class_accuracy": float(
                np.bincount(ref_split.test_labels).max() / len(ref_split.test_labels)
            ),
        },
        "headline_teacher": spec.headline_teacher,
        "reference_run": {"k": ref[0], "seed": ref[1]},
        "systems": systems,
        "comparison": compare(systems, spec.ks),
        "runs": rows,
    }


# ---------------------------------------------------------------------------------------------
# Markdown
# ---------------------------------------------------------------------------------------------
def _pm(s: dict[str, float] | None, scale: float = 1.0, digits: int = 3) -> str:
    if not s or not s.get("n"):
        return "-"
    return f"{s['mean'] * scale:.{digits}f} ± {s['std'] * scale:.{digits}f}"


def _size(n: float | None) -> str:
    if n is None:
        return "-"
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} GB"


def _params(n: float | None) -> str:
    if not n:
        return "-"
    if n < 1e3:
        return f"{n:.0f}"
    return f"{n / 1e6:.1f}M" if n >= 1e6 else f"{n / 1e3:.0f}K"


def _tps(entry: dict[str, Any], key: str, setting: str) -> str:
    row = (entry.get(key) or {}).get(setting)
    return f"{row['throughput_tps']:,.0f}" if row else "-"


ROLE_ORDER = {"teacher": 0, "student": 1, "student-gold": 2, "baseline": 3}


def protocol_table(doc: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    """Header and rows of the protocol's table (Markdown here, HTML in bench/report_page.py):
    accuracy per k (mean ± std over seeds), then size and speed per system."""
    spec = doc["spec"]
    ks = [str(k) for k in spec["ks"]]
    threads = [f"threads={t or 'all'}" for t in spec["speed"]["threads"]]
    all_label = f"{doc['budget']['torch_threads']} threads"  # what "threads=all" meant
    head = ["system"]
    head += [f"accuracy k={k}" for k in ks] + [f"macro-F1 k={k}" for k in ks]
    head += [f"% of teacher k={k}" for k in ks]
    head += ["params", "size fp32", "size int8", "p50 / p95 ms (1 thread)"]
    head += ["texts/s 1 thread" if t == "threads=1" else f"texts/s {all_label}" for t in threads]
    head += ["int8 texts/s 1 thread", "x teacher (1 thread)"]
    rows = []
    ordered = sorted(doc["systems"].items(), key=lambda kv: ROLE_ORDER.get(kv[1]["role"], 9))
    for name, e in ordered:
        by_k = e.get("by_k", {})
        cells = [name]
        cells += [_pm(by_k.get(k, {}).get("accuracy")) for k in ks]
        cells += [_pm(by_k.get(k, {}).get("macro_f1")) for k in ks]
        cells += [_pm(by_k.get(k, {}).get("pct_of_teacher"), digits=1) for k in ks]
        one = (e.get("speed") or {}).get("threads=1")
        cells += [_params(e.get("params")), _size(e.get("size_bytes")), _size(e.get("int8_bytes"))]
        cells.append(f"{one['p50_ms']:.2f} / {one['p95_ms']:.2f}" if one else "-")
        cells += [_tps(e, "speed", t) for t in threads]
        cells.append(_tps(e, "int8_speed", "threads=1"))
        cells.append(f"{one['x_teacher']:,.0f}x" if one and "x_teacher" in one else "-")
        rows.append(cells)
    return head, rows


def protocol_caption(doc: dict[str, Any]) -> str:
    """What the table measured: data, seeds, test split, how speed was timed (Markdown)."""
    spec = doc["spec"]
    ks = [str(k) for k in spec["ks"]]
    d = doc["dataset"]
    env = doc["environment"]
    ref = doc["reference_run"]
    return (
        f"**{doc['protocol']}** ({d['name']}): k = {', '.join(ks)} labeled examples per class, "
        f"seeds {spec['seeds']}, {d['test_size']:,} fixed test texts (majority class "
        f"{d['majority_class_accuracy']:.3f}), students distilled on {d['transfer_size']:,} "
        f"teacher-labelled texts (gold + pool). Accuracy is mean ± std over seeds; % of teacher "
        f"is against the teacher the student learnt from ({doc['headline_teacher']} for "
        "baselines and gold-only students). Size and CPU speed (tokenisation included; latency "
        f"at batch 1, throughput at batch 256) were measured on the k = {ref['k']}, seed "
        f"{ref['seed']} models in one process on {env['machine']['cpus']} CPUs "
        f"({env['machine']['processor']}); teachers are timed without their embedding cache."
    )


def protocol_summary(doc: dict[str, Any]) -> list[str]:
    """One line per k: the best distilled student against every baseline (Markdown)."""
    summary = []
    for k, c in (doc.get("comparison") or {}).items():
        parts = [
            f"{name} {v['accuracy_diff']:+.3f}"
            + (f" ({v['throughput_ratio']:.2g}x its throughput)" if v["throughput_ratio"] else "")
            for name, v in c["vs"].items()
        ]
        summary.append(
            f"- k = {k}: best student **{c['best_student']}**, {c['accuracy']:.3f} "
            f"({c['pct_of_teacher']:.1f}% of its teacher); vs " + "; ".join(parts) + "."
        )
    return summary


def protocol_footer(doc: dict[str, Any]) -> str:
    env = doc["environment"]
    took = doc["budget"]["seconds"] / 60
    return (
        f"Generated from `bench/results/{doc['protocol']}.json` "
        f"(`{env['command']}`, commit {(env.get('git_commit') or 'unknown')[:8]}, "
        f"{took:.0f} min{', quick mode' if doc['quick'] else ''})."
    )


def render_markdown(doc: dict[str, Any]) -> str:
    """One table: accuracy per k (mean ± std over seeds), then size and speed per system."""
    head, rows = protocol_table(doc)
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(cells) + " |" for cells in rows]
    body = [protocol_caption(doc), "", *lines, ""]
    summary = protocol_summary(doc)
    if summary:
        body += ["Accuracy difference of the best distilled student (1-thread speed ratio):", ""]
        body += [*summary, ""]
    return "\n".join([*body, protocol_footer(doc)]) + "\n"
