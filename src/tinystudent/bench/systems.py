"""The systems of one (k, seed) unit: teachers, students and baselines, each one record.

Teachers are fitted and students trained by the pipeline's own stages (`fit_member`,
`amalgamate`, `label_all`, `stage_student`) inside the unit's run directory; what the bench
adds per system, its row of scores and (on the reference unit) its measured size and speed,
is one JSON record kept by the same `RunDir.artifact`, so a killed bench resumes system by
system through `stages.json` like any pipeline run.
"""

from __future__ import annotations

import re
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from tinystudent.bench.progress import Progress
from tinystudent.bench.spec import BaselineSpec, BenchSpec, student_recipe
from tinystudent.data import Split
from tinystudent.evaluate import classification_metrics
from tinystudent.evaluate.speed import speed_profile
from tinystudent.io import read_json, recipe_key
from tinystudent.label import label_texts
from tinystudent.pipeline import (
    RunDir,
    amalgamate,
    fit_member,
    label_all,
    stage_student,
    stage_transfer,
    student_key,
)
from tinystudent.teachers.amalgamate import to_union
from tinystudent.teachers.frozen import single_thread_blas
from tinystudent.teachers.registry import kind_of
from tinystudent.train import TeacherSignals


def slug(name: str) -> str:
    """A system's name as a folder name: `model2vec-lr (mpnet)` -> `model2vec-lr_mpnet`."""
    return re.sub(r"[^A-Za-z0-9.+-]+", "_", name).strip("_") or "system"


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


def chained_speed(profiles: list[dict[str, dict[str, float]]]) -> dict[str, dict[str, float]]:
    """Several teachers run one after another on each text (an amalgamated teacher): their
    latencies add up and so do their seconds per text."""
    out: dict[str, dict[str, float]] = {}
    for setting in profiles[0]:
        rows = [p[setting] for p in profiles]
        row = {m: sum(r[m] for r in rows) for m in rows[0] if m.endswith("_ms")}
        row["throughput_tps"] = 1.0 / sum(1.0 / max(r["throughput_tps"], 1e-9) for r in rows)
        row["threads"] = rows[0]["threads"]
        out[setting] = row
    return out


@dataclass
class Unit:
    """One (k, seed) unit: its run directory and split, what its teachers said, its records.

    `key` is what every record depends on beyond its own stage (the spec, quick mode, the
    speed settings when `measure`, every teacher's stage key)."""

    spec: BenchSpec
    run: RunDir
    split: Split
    progress: Progress
    measure: bool
    all_threads: int
    key: str
    rows: list[dict[str, Any]] = field(default_factory=list)
    systems: dict[str, dict[str, Any]] = field(default_factory=dict)
    teachers: dict[str, Any] = field(default_factory=dict)
    test_probs: dict[str, np.ndarray] = field(default_factory=dict)
    kd_probs: dict[str, np.ndarray] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        r = self.run.recipe
        pos = f"({self.spec.seeds.index(r.data.seed) + 1}/{len(self.spec.seeds)})"
        self.tag = f"k={r.data.k} seed {r.data.seed} {pos}"
        self.transfer, self.transfer_labels, _ = stage_transfer(self.run, self.split)
        self.y_test = self.split.test_labels
        self.headline = self.spec.headline_teacher
        self.speed_texts = self.split.test_texts[: self.spec.speed.texts]

    # -- records -------------------------------------------------------------------------
    def keep(self, name: str, own_key: str, compute: Callable[[], dict[str, Any]]) -> None:
        """The system's record (`row`, and `system` when measured) from `systems/`, or
        computed and kept there; `own_key` is what the system's own artifacts depend on."""
        key = recipe_key([self.key, name, own_key])
        path = self.run.root / "systems" / f"{slug(name)}.json"
        record = self.run.artifact(f"system:{name}", key, path, compute)
        self.rows.append(record["row"])
        if record.get("system") is not None:
            self.systems[name] = record["system"]

    def row(self, name: str, probs: np.ndarray, ref: str, **extra: Any) -> dict[str, Any]:
        """Scores on the test split, and against the teacher `ref` (% of it, agreement)."""
        r = self.run.recipe.data
        row: dict[str, Any] = {"k": r.k, "seed": r.seed, "system": name}
        row.update(classification_metrics(self.y_test, probs))
        ref_probs = self.test_probs[ref]
        ref_acc = classification_metrics(self.y_test, ref_probs)["accuracy"]
        row["pct_of_teacher"] = 100 * row["accuracy"] / ref_acc
        row["agreement_with_teacher"] = float((probs.argmax(1) == ref_probs.argmax(1)).mean())
        row["reference_teacher"] = ref
        row.update(extra)
        return row

    def speed(self, predict: Callable[[list[str]], Any], teacher: bool = False) -> dict[str, Any]:
        sp = self.spec.speed
        n = sp.teacher_latency_n if teacher else sp.latency_n
        return measure_speed(
            predict, self.speed_texts, sp.threads, n, sp.min_seconds, self.all_threads
        )

    def run_all(self) -> dict[str, Any]:
        """Every system of the unit, teachers first (the others are compared with them)."""
        fit_teachers(self)
        names = list(self.spec.teachers)
        order = [self.headline, *(n for n in names if n != self.headline)]
        for name in [n for n in order if n in self.spec.teachers]:
            teacher_record(self, name)
        if self.spec.amalgamation:
            amalgamated_record(self)
        for sname in self.spec.students:
            for tname in self.spec.kd_teachers:
                student_record(self, sname, tname)
            if self.spec.gold_students:
                student_record(self, sname, None)
        for bname, bspec in self.spec.baselines.items():
            baseline_record(self, bname, bspec)
        return {"rows": self.rows, "systems": self.systems}


# -- teachers -------------------------------------------------------------------------------
def fit_teachers(u: Unit) -> None:
    """Fit (or reload) every teacher through the pipeline's teacher stages, amalgamate them
    if asked, and keep each one's probabilities (the transfer set's too for those distilled
    from), all through the unit's content-keyed label cache."""
    members: list[tuple[str, Any]] = []
    for i, name in enumerate(u.spec.teachers):
        n = len(u.split.train_texts)
        with u.progress.task("teacher", f"{u.tag}: teacher {name} (fit on {n})"):
            t0 = time.perf_counter()
            teacher = fit_member(u.run, u.split, i)
            members.append((name, teacher))
            label(u, name, teacher)
            u.seconds[name] = time.perf_counter() - t0
    if u.spec.amalgamation:
        name = u.spec.amalgamation.name
        with u.progress.task("teacher", f"{u.tag}: teacher {name} (amalgamating)"):
            t0 = time.perf_counter()
            label(u, name, amalgamate(u.run, u.split, members))
            u.seconds[name] = time.perf_counter() - t0


def label(u: Unit, name: str, teacher: Any) -> None:
    """Test probabilities (in the data's label space), and the transfer set's when the
    students learn from this teacher (`pipeline.label_all`)."""
    r = u.run.recipe
    u.teachers[name] = teacher
    if name in u.spec.kd_teachers:
        probs, test, _, _ = label_all(u.run, teacher, u.transfer, u.split.test_texts)
        u.kd_probs[name] = to_union(probs, teacher.label_names, u.split.label_names)
    else:
        desc = f"{name} on test"
        test, _ = label_texts(teacher, u.split.test_texts, u.run.cache, r.label.shard_size, desc)
    u.test_probs[name] = to_union(test, teacher.label_names, u.split.label_names)


def teacher_record(u: Unit, name: str) -> None:
    """A teacher's row, and its size and speed (encoder included) when measuring."""
    i = list(u.spec.teachers).index(name)
    saved = u.run.root / "teachers" / str(i)
    cfg = u.spec.teachers[name]

    def compute() -> dict[str, Any]:
        teacher, test_p = u.teachers[name], u.test_probs[name]
        log = read_json(saved / "train_log.json")
        info = {"fit": log.get("fit", log), "seconds": u.seconds[name]}
        info["mean_max_prob"] = float(test_p.max(1).mean())
        row = u.row(f"{name} (teacher)", test_p, u.headline, role="teacher", **info)
        system = None
        if u.measure:
            label = f"{u.tag}: timing teacher {name} (encoder included)"
            with u.progress.task("speed:teacher", label):
                kind = kind_of(cfg)
                system = {
                    "role": "teacher",
                    "kind": kind.name,
                    "model": cfg.model,
                    "params": int(teacher.num_params()),
                    "size_bytes": kind.size(teacher, saved),
                    "int8_bytes": None,
                    "speed": u.speed(kind.timed(teacher), teacher=True),
                }
        return {"row": row, "system": system}

    u.keep(f"{name} (teacher)", u.run.stages.get(f"teacher{i}", ""), compute)


def amalgamated_record(u: Unit) -> None:
    """The amalgamated teacher's row; its members run one after another on each text, so
    its size and speed are theirs added up (as the pipeline's report adds them)."""
    assert u.spec.amalgamation is not None
    name = u.spec.amalgamation.name
    members = [u.systems.get(f"{m} (teacher)") for m in u.spec.teachers]

    def compute() -> dict[str, Any]:
        teacher, test_p = u.teachers[name], u.test_probs[name]
        info = {"fit": teacher.fit_info, "seconds": u.seconds[name]}
        info["mean_max_prob"] = float(test_p.max(1).mean())
        row = u.row(f"{name} (teacher)", test_p, u.headline, role="teacher", **info)
        system = None
        if u.measure and all(members):
            parts = [m for m in members if m is not None]
            system = {
                "role": "teacher",
                "kind": "amalgamated",
                "model": " + ".join(str(m["model"]) for m in parts),
                "params": sum(int(m["params"]) for m in parts),
                "size_bytes": sum(int(m["size_bytes"]) for m in parts),
                "int8_bytes": None,
                "speed": chained_speed([m["speed"] for m in parts]),
            }
        return {"row": row, "system": system}

    keys = [u.run.stages.get(f"teacher{i}", "") for i in range(len(u.spec.teachers))]
    u.keep(f"{name} (teacher)", recipe_key(keys), compute)


# -- students -------------------------------------------------------------------------------
def student_record(u: Unit, sname: str, tname: str | None) -> None:
    """One student through the pipeline's student stage, distilled from teacher `tname`
    (None: trained on the gold labels alone), in `students/<system>/` of the unit."""
    from tinystudent.students.int8 import dynamic_int8

    gold = tname is None
    name = f"{sname} (gold only)" if gold else f"{sname} (KD {tname})"
    recipe = student_recipe(u.spec, u.run.recipe, sname, tname)
    slot = u.run.slot(f"student:{name}", Path("students") / slug(name))
    split = u.split

    def compute() -> dict[str, Any]:
        if tname is None:
            texts, labels = split.train_texts, split.train_labels
            probs = np.eye(len(split.label_names), dtype=np.float32)[labels]
        else:
            texts, labels, probs = u.transfer, u.transfer_labels, u.kd_probs[tname]
        task = f"gold:{sname}" if gold else f"kd:{sname}"
        with u.progress.task(task, f"{u.tag}: student {name} on {len(texts):,} texts"):
            signals = TeacherSignals(probs=probs)
            student, log = stage_student(
                u.run, split, texts, signals, labels, recipe=recipe, slot=slot
            )
            p = student.predict_proba(split.test_texts)
            fast = dynamic_int8(student)
            q = fast.predict_proba(split.test_texts)
            row = u.row(
                name,
                p,
                u.headline if tname is None else tname,
                role="student-gold" if gold else "student",
                int8_accuracy=classification_metrics(u.y_test, q)["accuracy"],
                best_epoch=log["best_epoch"],
                params=student.num_params(),
                seconds=log["seconds"],
            )
        system = None
        if u.measure:
            with u.progress.task("speed", f"{u.tag}: timing {name} (fp32 and int8)"):
                system = {
                    "role": "student-gold" if gold else "student",
                    "kind": u.spec.students[sname].kind,
                    "options": u.spec.students[sname].options,
                    "teacher": tname,
                    "params": student.num_params(),
                    "size_bytes": (slot.out / "student.safetensors").stat().st_size,
                    "int8_bytes": _int8_bytes(student),
                    "speed": u.speed(student.predict_proba),
                    "int8_speed": u.speed(fast.predict_proba),
                }
        return {"row": row, "system": system}

    u.keep(name, student_key(recipe), compute)


def _int8_bytes(student: Any) -> int:
    from tinystudent.students.int8 import save_int8

    with tempfile.TemporaryDirectory(prefix="tinystudent-bench-") as tmp:
        return int(save_int8(student, Path(tmp) / "int8.safetensors"))


# -- baselines ------------------------------------------------------------------------------
def _baseline(spec: BaselineSpec, cache_root: Path, seed: int) -> Any:
    from tinystudent.baselines import BASELINES

    options = {"seed": seed, **spec.options}
    if spec.kind == "model2vec-lr":  # distilling the static model takes minutes: once
        options.setdefault("cache_dir", str(cache_root / "model2vec"))
    if BASELINES[spec.kind].content_cached:  # trained peers are cached by content key
        options.setdefault("cache_dir", str(cache_root))
    return BASELINES[spec.kind](**options)


def baseline_record(u: Unit, bname: str, bspec: BaselineSpec) -> None:
    """One non-distilled baseline, on gold labels or on the distilling teacher's hard labels."""
    split = u.split

    def compute() -> dict[str, Any]:
        with u.progress.task(f"baseline:{bname}", f"{u.tag}: baseline {bname}"):
            t0 = time.perf_counter()
            model = _baseline(bspec, u.spec.cache_root(), u.run.recipe.data.seed)
            texts, labels, ref = split.train_texts, split.train_labels, u.headline
            if bspec.train_on == "teacher":  # the distilling teacher's labels, hard
                ref = u.spec.kd_teachers[0]
                texts, labels = u.transfer, u.kd_probs[ref].argmax(1).tolist()
            if model.uses_pool:  # e.g. setfit-distilled: the gold set teaches, the pool is used
                model.pool = u.transfer[len(split.train_texts) :]
            with single_thread_blas():  # CV fits of small LRs; see single_thread_blas
                model.fit(texts, labels, len(split.label_names))
                p = model.predict_proba(split.test_texts)
            row = u.row(
                bname,
                p,
                ref,
                role="baseline",
                trained_on=f"{bspec.train_on}+pool" if model.uses_pool else bspec.train_on,
                train_texts=len(texts) + getattr(model, "pool_used", 0),
                params=model.num_params(),
                seconds=time.perf_counter() - t0,
            )
        system = None
        if u.measure:
            with u.progress.task("speed", f"{u.tag}: timing {bname}"):
                system = {
                    "role": "baseline",
                    "kind": bspec.kind,
                    "options": bspec.options,
                    "params": model.num_params(),
                    "size_bytes": model.size_bytes(),
                    "int8_bytes": None,
                    "speed": u.speed(model.predict_proba),
                }
        return {"row": row, "system": system}

    u.keep(bname, u.run.stages.get("data", ""), compute)
