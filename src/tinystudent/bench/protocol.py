"""The protocol's run loop: every (k, seed) unit a pipeline run directory, resumed by stage.

Unit (k, seed) lives in `<out>/<name>.runs/k<k>-seed<seed>/` (`-quick` added in quick mode):
the pipeline's `data/split.json`, `teachers/<i>/`, `students/<system>/`, the per-system
records in `systems/` and, once every system is done, `unit.json`, all recorded in its
`stages.json`. A rerun skips what is done and unchanged, so an interrupted bench resumes
where it stopped, and a finished one renders again without training anything.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

from tinystudent.bench.environment import environment as bench_environment
from tinystudent.bench.progress import Progress, Say
from tinystudent.bench.report import document, render_markdown
from tinystudent.bench.spec import QUICK_TEST_TEXTS, BenchSpec, quick_spec, unit_recipe
from tinystudent.bench.systems import Unit
from tinystudent.data import Split
from tinystudent.io import read_json, recipe_key, write_json, write_text
from tinystudent.pipeline import (
    RunDir,
    member_key,
    stage_data,
    transfer_set,
    upstream_code_versions,
)
from tinystudent.teachers.registry import kind_of
from tinystudent.train import loop as train_code

#: What a unit's records depend on beyond the stages: every spec field but these.
_NOT_IN_UNIT_KEY = {
    "name",
    "ks",
    "seeds",
    "speed",
    "budget_minutes",
    "cache_dir",
    "work_threads",
    "device",
}


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
    doc["environment"] = environment or bench_environment()
    write_json(Path(out_dir) / f"{spec.name}.json", doc)
    write_text(Path(out_dir) / f"{spec.name}.md", render_markdown(doc))
    return doc


def open_unit(spec: BenchSpec, root: Path, k: int, seed: int, quick: bool) -> tuple[RunDir, Split]:
    """The unit's run directory and its split (the pipeline's data stage); quick mode scores
    the first `QUICK_TEST_TEXTS` test texts only."""
    recipe = unit_recipe(spec, k, seed)
    run = RunDir(root / f"k{k}-seed{seed}{'-quick' if quick else ''}", recipe)
    write_json(run.root / "recipe.json", recipe.model_dump(mode="json"))
    split = stage_data(run)
    if quick:
        split.test_texts = split.test_texts[:QUICK_TEST_TEXTS]
        split.test_labels = split.test_labels[:QUICK_TEST_TEXTS]
    return run, split


def unit_key(spec: BenchSpec, run: RunDir, quick: bool, measure: bool) -> str:
    """What a unit's records depend on: the spec (not which other units it has), quick mode,
    the speed settings where it is measured, its teachers' stage keys and the code versions."""
    r = run.recipe
    assert r.teachers is not None
    return recipe_key(
        {
            "spec": recipe_key(spec, exclude=_NOT_IN_UNIT_KEY),
            "quick": quick,
            "speed": spec.speed if measure else None,
            "teachers": [member_key(r, m) for m in r.teachers],
            "versions": [*upstream_code_versions(r), train_code.CODE_VERSION],
        }
    )


def _run(
    spec: BenchSpec, out: Path, quick: bool, say: Say | None, all_threads: int
) -> dict[str, Any]:
    """The protocol proper; `run_benchmark` wraps it in the thread settings and writes it."""
    root = out / f"{spec.name}.runs"
    units = {
        (k, seed): open_unit(spec, root, k, seed, quick) for k in spec.ks for seed in spec.seeds
    }
    ref = spec.reference
    ref_split = units[ref][1]
    n_transfer = len(transfer_set(ref_split)[0])
    load_before = os.getloadavg()
    keys = {ks: unit_key(spec, run, quick, ks == ref) for ks, (run, _) in units.items()}
    done = {
        ks: read_json(run.root / "unit.json")
        for ks, (run, _) in units.items()
        if run.is_done("unit", keys[ks], run.root / "unit.json")
    }
    todo = [ks for ks in units if ks not in done]
    progress = _progress(spec, units, todo, n_transfer, say, len(done))
    splits = [split for _, split in units.values()]
    t0 = time.perf_counter()
    embedding = embed_all(spec, _protocol_texts(splits), progress) if todo else {}
    embed_seconds = time.perf_counter() - t0
    for ks in todo:
        run, split = units[ks]

        def compute(run: RunDir = run, split: Split = split, ks: tuple[int, int] = ks) -> Any:
            t_unit = time.perf_counter()
            unit = Unit(spec, run, split, progress, ks == ref, all_threads, keys[ks])
            return {**unit.run_all(), "seconds": time.perf_counter() - t_unit}

        done[ks] = run.artifact("unit", keys[ks], run.root / "unit.json", compute)
    ordered = {f"{k}/{seed}": done[(k, seed)] for k, seed in units}
    doc = document(spec, quick, ref_split.label_names, ref_split, n_transfer, ordered)
    doc["embedding"] = embedding
    doc["budget"] = {
        "target_minutes": spec.budget_minutes,
        "embedding_seconds": embed_seconds,
        "unit_seconds": {key: u["seconds"] for key, u in ordered.items()},
        "load_average_before": list(load_before),
        "load_average_after": list(os.getloadavg()),
    }
    return doc


def _plan(unit: BenchSpec, n_transfer: int, measure: bool) -> list[tuple[str, float]]:
    """Prior costs of one (k, seed) unit in seconds on a 2-core CPU; the progress display
    replaces them with measured durations as tasks finish."""
    k = unit.ks[0]
    plan: list[tuple[str, float]] = [("teacher", 5.0)] * len(unit.teacher_names)
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


def _progress(
    spec: BenchSpec,
    units: dict[tuple[int, int], tuple[RunDir, Split]],
    todo: list[tuple[int, int]],
    n_transfer: int,
    say: Say | None,
    n_done: int,
) -> Progress:
    """The progress display, planned over the units still to run; says what is resumed."""
    plan: list[tuple[str, float]] = []
    for k, seed in todo:
        unit = spec.model_copy(update={"ks": [k], "seeds": [seed]})
        plan += _plan(unit, n_transfer, measure=(k, seed) == spec.reference)
    progress = Progress(spec.name, plan)
    if say is not None:
        progress.say = say
    started = {
        f"{k}/{seed}": sum(s.startswith("system:") for s in units[(k, seed)][0].stages)
        for k, seed in todo
    }
    started = {key: n for key, n in started.items() if n}
    if n_done or started:
        progress.say(
            f"[{spec.name}] resuming: {n_done} (k, seed) units already done"
            + "".join(f", {n} systems of unit k/seed {key} recorded" for key, n in started.items())
        )
    return progress


def _protocol_texts(splits: list[Split]) -> list[str]:
    """Every transfer and test text of every unit, once, in first-seen order."""
    texts: list[str] = []
    for split in splits:
        texts += transfer_set(split)[0] + split.test_texts
    return list(dict.fromkeys(texts))


def embed_all(spec: BenchSpec, texts: list[str], progress: Progress) -> dict[str, Any]:
    """Fill the embedding cache of every frozen teacher with every text the protocol uses,
    before the units (whose teachers then read it), one encoder at a time."""
    from tinystudent.label.embeddings import embed_texts
    from tinystudent.teachers.frozen import FrozenEncoderTeacher, SentenceEncoder

    out: dict[str, Any] = {}
    frozen: dict[str, Any] = {n: c for n, c in spec.teachers.items() if kind_of(c).name == "frozen"}
    encoders: dict[str, SentenceEncoder] = {}
    missing: dict[str, int] = {}
    for name, cfg in frozen.items():  # the encoder a unit's teacher loads, and its cache
        cache_dir = spec.cache_root() / kind_of(cfg).cache
        teacher = FrozenEncoderTeacher.from_config([], cfg, cache_dir).to(spec.device)
        encoders[name] = teacher.encoder
        cache = encoders[name].open_cache()
        missing[name] = sum(1 for t in texts if cache.get(t) is None)
        # Prior: ~2e9 parameter-passes per second on two cores (MiniLM ~90/s, mpnet ~18/s).
        prior = missing[name] * encoders[name].num_params() / 2e9
        progress.plan.insert(0, (f"embed:{name}", prior))
    for name in frozen:
        encoder = encoders.pop(name)
        label = f"embedding {missing[name]:,} of {len(texts):,} texts with {name} (once, cached)"
        start = time.perf_counter()
        with progress.task(f"embed:{name}", label):
            _, stats = embed_texts(encoder, texts, encoder.open_cache(), desc=f"embed {name}")
        out[name] = {
            "texts": stats.total,
            "computed": stats.computed,
            "cached": stats.hits,
            "seconds": time.perf_counter() - start,
            "texts_per_second": stats.computed / stats.seconds if stats.computed else None,
            "encoder_fingerprint": encoder.fingerprint,
        }
    return out


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
