"""The pipeline: data -> teacher -> soft labels -> student -> evaluate, one artifact per stage.

Every stage writes into the run directory and records a hash of the recipe sections it
depends on in `stages.json`; a rerun skips a stage whose artifact exists and whose inputs are
unchanged, and redoes it (and what follows) otherwise.
"""

from __future__ import annotations

import dataclasses
import logging
import shutil
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from tinystudent import __version__
from tinystudent.check import resolved_yaml
from tinystudent.code_version import versioned
from tinystudent.data import (
    Split,
    load_dataset,
    load_multilabel_dataset,
    make_multilabel_split,
    make_split,
)
from tinystudent.data import split as split_code
from tinystudent.devices import resolve_device
from tinystudent.errors import RecipeError
from tinystudent.evaluate import classification_metrics, render_markdown, throughput
from tinystudent.evaluate.multilabel import choose_thresholds, decide, multilabel_metrics
from tinystudent.evaluate.predictions import SplitPredictions, save_predictions
from tinystudent.evaluate.run_page import write_report_html
from tinystudent.evaluate.speed import torch_threads
from tinystudent.io import read_json, recipe_key, remove_stale_temps, write_json, write_text
from tinystudent.label import LabelStats, label_texts
from tinystudent.label import cache as label_code
from tinystudent.recipe import Recipe, TeacherConfig, TeacherMember
from tinystudent.seed import seed_everything
from tinystudent.stages import Stages
from tinystudent.students import Student, build_student, load_student
from tinystudent.teachers import Teacher
from tinystudent.teachers import amalgamate as amalgamate_code
from tinystudent.teachers.amalgamate import (
    AmalgamatedTeacher,
    agreement_markdown,
    agreement_matrix,
    to_union,
)
from tinystudent.teachers.base import FittedTeacher
from tinystudent.teachers.portable import SavedAmalgam
from tinystudent.teachers.registry import FitRequest, kind_of
from tinystudent.train import Strategy, TeacherSignals, train_student
from tinystudent.train import loop as train_code
from tinystudent.train.loop import holdout_split

log = logging.getLogger(__name__)

AnyTeacher = FittedTeacher


def teacher_code_version(cfg: TeacherConfig) -> int:
    """The `CODE_VERSION` of the module that fits and runs a teacher of this kind."""
    return kind_of(cfg).code_version


def upstream_code_versions(recipe: Recipe) -> tuple[int, ...]:
    """Code versions of everything the student's inputs come from: data, teacher(s), labels."""
    teachers: tuple[int, ...]
    if recipe.teachers is None:
        teachers = (teacher_code_version(recipe.teacher),)
    else:
        members = tuple(teacher_code_version(m.config) for m in recipe.teachers)
        teachers = (*members, amalgamate_code.CODE_VERSION)
    return (split_code.CODE_VERSION, *teachers, label_code.CODE_VERSION)


class RunDir(Stages):
    """Paths of a run's artifacts and the record of which stage ran with which inputs."""

    def __init__(self, root: str | Path, recipe: Recipe) -> None:
        super().__init__(root)
        self.recipe = recipe
        # Resolved once, before any stage: `cuda` on a machine without one stops here.
        self.device = resolve_device(recipe.device)
        self.split = self.root / "data" / "split.json"
        self.teacher = self.root / "teacher"
        self.student = self.root / "student"
        # Per-epoch training state of an unfinished stage; removed once its model is saved.
        self.teacher_ckpt = self.root / "teacher.ckpt"
        self.student_ckpt = self.root / "student.ckpt"
        self.cache = Path(recipe.label.cache_dir or self.root / "cache")
        # Temp files a killed writer left behind; the cache is skipped (it may be shared).
        for d in (self.root, self.split.parent, self.teacher, self.student):
            remove_stale_temps(d)

    def slot(self, stage: str, folder: str | Path) -> Slot:
        """Where a stage named `stage` keeps its model (`folder`) and its unfinished state."""
        out = self.root / folder
        return Slot(stage, out, out.with_name(out.name + ".ckpt"))


@dataclass(frozen=True)
class Slot:
    """One stage's place in a run directory: its name in `stages.json`, the folder its model
    is saved in, and the folder its per-epoch training state waits in until then."""

    stage: str
    out: Path
    ckpt: Path


def stage_data(run: RunDir) -> Split:
    r = run.recipe
    key = versioned(r.section_hash("data"), split_code.CODE_VERSION)
    if run.is_done("data", key, run.split):
        run.mark("data", key, ran=False)
        return Split.from_json(read_json(run.split))
    d = r.data
    if d.multi_label:
        mds = load_multilabel_dataset(
            d.dataset,
            d.text_column,
            d.label_column,
            d.label_names,
            d.on_conflict,
            d.label_separator,
        )
        split = make_multilabel_split(mds, d.k, d.seed, d.test_size, d.split_seed)
    else:
        ds = load_dataset(d.dataset, d.text_column, d.label_column, d.label_names, d.on_conflict)
        split = make_split(ds, d.k, d.seed, d.test_size, d.split_seed)
    if d.max_pool is not None:
        split.pool = split.pool[: d.max_pool]
    write_json(run.split, split.to_json())
    run.mark("data", key, ran=True)
    return split


def stage_teacher(run: RunDir, split: Split) -> AnyTeacher:
    r = run.recipe
    versions = (split_code.CODE_VERSION, teacher_code_version(r.teacher))
    key = versioned(r.section_hash("data", "teacher"), *versions)
    return fit_teacher(run, split, r.teacher, key, "teacher", run.teacher, run.teacher_ckpt)


def fit_teacher(
    run: RunDir,
    split: Split,
    cfg: TeacherConfig,
    key: str,
    stage: str,
    out_dir: Path,
    ckpt_dir: Path,
) -> Any:
    """Fit (or reload) one teacher of any kind into `out_dir`, recorded as `stage`. What a
    kind computes per text (embeddings, raw LM scores) lives in the run's cache, so a rerun
    with another seed, k or calibration (sharing `label.cache_dir`) never computes it twice;
    unfinished training state waits in `ckpt_dir` and goes once the teacher is saved."""
    kind = kind_of(cfg)
    cache = run.cache / kind.cache
    if run.is_done(stage, key, out_dir / "teacher.json"):
        run.mark(stage, key, ran=False)
        shutil.rmtree(ckpt_dir, ignore_errors=True)  # left by a crash after the save
        return kind.open(out_dir, cache, split.multi_label, run.device)
    gold: Any = split.train_targets if split.multi_label else split.train_labels
    request = FitRequest(
        split.label_names,
        cfg,
        split.train_texts,
        gold,
        run.recipe.data.seed,
        cache,
        ckpt_dir,
        split.multi_label,
        run.device,
    )
    teacher, train_log = kind.fit(request)
    teacher.save(out_dir)
    write_json(out_dir / "train_log.json", train_log)
    run.mark(stage, key, ran=True)
    shutil.rmtree(ckpt_dir, ignore_errors=True)
    return teacher


def member_split(split: Split, labels: list[str] | None) -> Split:
    """The split as a teacher that knows only `labels` sees it: their gold examples only."""
    if labels is None:
        return split
    unknown = sorted(set(labels) - set(split.label_names))
    if unknown:
        raise RecipeError(f"teachers: labels {unknown} are not in the data's {split.label_names}")
    keep = [
        (t, labels.index(split.label_names[y]))
        for t, y in zip(split.train_texts, split.train_labels)
        if split.label_names[y] in labels
    ]
    return dataclasses.replace(
        split,
        label_names=list(labels),
        train_texts=[t for t, _ in keep],
        train_labels=[y for _, y in keep],
    )


def member_key(r: Recipe, m: TeacherMember) -> str:
    """The stage key of one of several teachers: the data and that member's own section."""
    key = r.section_hash("data") + recipe_key(m)
    return versioned(key, split_code.CODE_VERSION, teacher_code_version(m.config))


def member_slot(run: RunDir, i: int) -> Slot:
    """Where member `i` of `teachers` lives: `teachers/<i>`, stage `teacher<i>`."""
    return run.slot(f"teacher{i}", Path("teachers") / str(i))


def fit_member(run: RunDir, split: Split, i: int) -> AnyTeacher:
    """Fit (or reload) member `i` of the recipe's `teachers` into `teachers/<i>`."""
    assert run.recipe.teachers is not None
    m = run.recipe.teachers[i]
    slot = member_slot(run, i)
    key = member_key(run.recipe, m)
    return fit_teacher(
        run, member_split(split, m.labels), m.config, key, slot.stage, slot.out, slot.ckpt
    )


def member_names(r: Recipe) -> list[str]:
    """Display names of the `teachers` members: `name`, else `kind:model` (`#i` if repeated)."""
    assert r.teachers is not None
    names: list[str] = []
    for i, m in enumerate(r.teachers):
        base = m.name or f"{getattr(m.config, 'kind', 'finetune')}:{m.config.model}"
        names.append(base if base not in names else f"{base}#{i}")
    return names


def amalgamate(
    run: RunDir, split: Split, members: list[tuple[str, AnyTeacher]]
) -> AmalgamatedTeacher:
    """The members as one teacher, the way the recipe's `amalgamation` combines them."""
    amalgamated = AmalgamatedTeacher(
        [t for _, t in members], run.recipe.amalgamation, [n for n, _ in members], split.label_names
    )
    amalgamated.fit(split.train_texts, split.train_labels)
    return amalgamated


def stage_teachers(
    run: RunDir, split: Split
) -> tuple[list[tuple[str, AnyTeacher]], AmalgamatedTeacher]:
    """Fit every teacher of `teachers` (each in `teachers/<i>`) and amalgamate them."""
    names = member_names(run.recipe)
    members = [(name, fit_member(run, split, i)) for i, name in enumerate(names)]
    return members, amalgamate(run, split, members)


def teacher_signals(
    run: RunDir, teacher: Teacher, transfer: list[str], probs: np.ndarray
) -> TeacherSignals:
    """Every teacher output the objectives read: probabilities always; the sentence
    embeddings (through the content-keyed cache) and a layer source only when asked for."""
    r = run.recipe
    needs = r.train.needs()
    embed = getattr(teacher, "embed", None)
    layer_source = getattr(teacher, "layer_source", None)
    if needs and (
        ("embeddings" in needs and embed is None) or ("layers" in needs and layer_source is None)
    ):
        raise RecipeError(
            f"train.objectives: {sorted(needs)} need an encoder teacher (finetune or frozen); "
            f"this teacher ({type(teacher).__name__}) gives probabilities only"
        )
    embeddings = None
    if "embeddings" in needs:
        assert embed is not None
        embeddings = embed(transfer, run.cache / "embeddings")
    layers = None
    if "layers" in needs:
        assert layer_source is not None
        kinds = {o.kind for o in r.train.resolved_objectives()}
        layers = layer_source(attentions="attention" in kinds)
    return TeacherSignals(probs=probs, embeddings=embeddings, layers=layers)


def student_thresholds(
    student: Student,
    teacher: Any,
    transfer: list[str],
    signals: TeacherSignals,
    labels: list[int],
    r: Recipe,
) -> dict[str, Any]:
    """Set a multi-label student's per-label thresholds: the best F1 against the teacher's
    own decisions on the transfer texts training held out (all transfer texts when it held
    none out); the test split is never read."""
    _, val_idx = holdout_split(labels, r.train)
    rows = val_idx or list(range(len(transfer)))
    reference = teacher.predict_labels(signals.probs[rows])
    probs = student.predict_proba([transfer[i] for i in rows])
    student.set_multi_label(choose_thresholds(probs, reference))
    return {
        "chosen_on": "held-out transfer" if val_idx else "transfer",
        "texts": len(rows),
        "values": student.thresholds,
    }


def student_key(r: Recipe) -> str:
    """The student stage's key: every section its inputs and its training come from."""
    key = r.section_hash("data", *r.teacher_sections, "generate", "student", "train")
    return versioned(key, *upstream_code_versions(r), train_code.CODE_VERSION)


def stage_student(
    run: RunDir,
    split: Split,
    transfer: list[str],
    signals: TeacherSignals,
    labels: list[int],
    teacher: Any = None,
    recipe: Recipe | None = None,
    slot: Slot | None = None,
) -> tuple[Student, dict[str, Any]]:
    """Train (or reload) the student into `student/`; `recipe` and `slot` let a run hold
    several students (the bench: one per student, teacher and label source), each keyed by
    its own recipe and kept in its own folder."""
    r = recipe or run.recipe
    slot = slot or Slot("student", run.student, run.student_ckpt)
    key = student_key(r)
    if run.is_done(slot.stage, key, slot.out / "student.json"):
        run.mark(slot.stage, key, ran=False)
        shutil.rmtree(slot.ckpt, ignore_errors=True)
        return load_student(slot.out), read_json(slot.out / "train_log.json")
    if r.scale.nproc > 1:  # torch DDP on local processes; same global batch, same result
        from tinystudent.scale import train_student_ddp

        student, result = train_student_ddp(
            r.scale.nproc,
            r.student.kind,
            r.student.options,
            split.label_names,
            transfer,
            signals,
            labels,
            r.train,
            slot.out,
            backend=r.scale.ddp_backend,
            checkpoint_dir=slot.ckpt,
            device=r.device,
        )
    else:
        seed_everything(r.train.seed)  # initial weights independent of the stages before
        student = build_student(r.student.kind, r.student.options, split.label_names)
        if split.multi_label:
            student.set_multi_label()
        result = train_student(
            student,
            transfer,
            signals,
            labels,
            r.train,
            checkpoint_dir=slot.ckpt,
            strategy=Strategy(run.device),
        )
    log_data = result.log()
    if split.multi_label:
        log_data["thresholds"] = student_thresholds(student, teacher, transfer, signals, labels, r)
    student.save(slot.out)
    write_json(slot.out / "train_log.json", log_data)
    run.mark(slot.stage, key, ran=True)
    shutil.rmtree(slot.ckpt, ignore_errors=True)
    return student, log_data


def transfer_set(split: Split) -> tuple[list[str], list[int]]:
    """The k gold examples (with their labels) plus the unlabeled pool (label -1), deduplicated."""
    gold = set(split.train_texts)
    pool = [t for t in dict.fromkeys(split.pool) if t not in gold]
    # multi-label gold sets reach the student through the teacher only (bce on its outputs)
    ids = [-1] * len(split.train_texts) if split.multi_label else split.train_labels
    return split.train_texts + pool, ids + [-1] * len(pool)


def stage_transfer(run: RunDir, split: Split) -> tuple[list[str], list[int], list[str]]:
    """Gold + pool, plus generated and augmented texts when `generate.enabled` (resumable
    shards under `generate/`); returns the texts, their gold labels (-1 if none) and each
    text's source (gold / pool / generated / augmented)."""
    r = run.recipe
    gold = ["gold"] * len(split.train_texts)
    if not r.generate.enabled:
        texts, labels = transfer_set(split)
        return texts, labels, gold + ["pool"] * (len(texts) - len(gold))
    from tinystudent.generate import build_transfer_set

    pairs = build_transfer_set(split, r.generate, run.root / "generate", device=str(run.device))
    run.ran["generate"] = "ran"
    texts = split.train_texts + [t for t, _ in pairs]
    return texts, split.train_labels + [-1] * len(pairs), gold + [s for _, s in pairs]


def keep_confident(
    run: RunDir, transfer: list[str], labels: list[int], kinds: list[str], probs: np.ndarray
) -> tuple[list[str], list[int], list[str], np.ndarray, int]:
    """`generate.min_confidence`: machine-made texts (generated, augmented) the teacher is
    unsure about are dropped after labeling; gold and pool text is real and always kept.
    Returns the kept rows and how many were dropped."""
    threshold = run.recipe.generate.min_confidence
    if threshold is None or not run.recipe.generate.enabled:
        return transfer, labels, kinds, probs, 0
    from tinystudent.generate import confidence_mask

    real = np.array([k in ("gold", "pool") for k in kinds], dtype=bool)
    keep = real | confidence_mask(probs, threshold)
    idx = np.flatnonzero(keep)
    return (
        [transfer[i] for i in idx],
        [labels[i] for i in idx],
        [kinds[i] for i in idx],
        probs[idx],
        int((~keep).sum()),
    )


def ray_teacher(run: RunDir, teacher: Teacher) -> Path | SavedAmalgam:
    """What Ray workers rebuild the run's teacher from: its saved folder, or the saved members
    and how `teacher` (the driver's amalgamation, weights fitted) combines them."""
    if run.recipe.teachers is None:
        return run.teacher
    assert isinstance(teacher, AmalgamatedTeacher)
    dirs = [member_slot(run, i).out for i in range(len(run.recipe.teachers))]
    return SavedAmalgam.of(teacher, dirs)


def label_all(
    run: RunDir, teacher: Teacher, transfer: list[str], test: list[str]
) -> tuple[np.ndarray, np.ndarray, LabelStats, LabelStats]:
    """Teacher probabilities for the transfer set and the test split, locally or on Ray."""
    r = run.recipe
    if r.scale.label_backend == "ray":
        from tinystudent.scale import label_texts_ray

        both, stats = label_texts_ray(
            ray_teacher(run, teacher),
            transfer + test,
            run.cache,
            r.scale.label_workers,
            r.scale.label_batch_size,
            r.scale.ray_address,
            shard_size=r.label.shard_size,
            device=r.device,
            gpus_per_worker=r.scale.label_gpus,
        )
        return both[: len(transfer)], both[len(transfer) :], stats, LabelStats(total=len(test))
    probs, stats = label_texts(teacher, transfer, run.cache, r.label.shard_size)
    test_probs, test_stats = label_texts(
        teacher, test, run.cache, r.label.shard_size, desc="teacher on test"
    )
    return probs, test_probs, stats, test_stats


def _system_entry(
    name: str,
    probs: np.ndarray,
    labels: list[int],
    params: int,
    size: int,
    tput: float,
    teacher_pred: np.ndarray | None = None,
) -> dict[str, Any]:
    entry: dict[str, Any] = {"name": name, **classification_metrics(labels, probs)}
    entry.update(params=params, size_bytes=size, throughput=tput)
    if teacher_pred is not None:
        entry["agreement_with_teacher"] = float((probs.argmax(1) == teacher_pred).mean())
    return entry


def run(recipe: Recipe, out_dir: str | Path) -> dict[str, Any]:
    """Run (or resume) the whole pipeline; returns the report, also saved in `out_dir`.

    Everything runs on the recipe's pinned torch threads when it sets `threads`, so its
    figures do not depend on the machine's core count."""
    with torch_threads(recipe.threads):
        return _run(recipe, out_dir)


def _run(recipe: Recipe, out_dir: str | Path) -> dict[str, Any]:
    start = time.perf_counter()
    rd = RunDir(out_dir, recipe)
    write_json(rd.root / "recipe.json", recipe.model_dump(mode="json"))
    # resolved (every default written out): `tinystudent run <out>/recipe.yaml` repeats the run
    header = f"the resolved recipe of this run; `tinystudent run {rd.root}/recipe.yaml` repeats it"
    write_text(rd.root / "recipe.yaml", resolved_yaml(recipe, header))
    split = stage_data(rd)
    members: list[tuple[str, AnyTeacher]] = []
    teacher: AnyTeacher | AmalgamatedTeacher
    if recipe.teachers is None:
        teacher = stage_teacher(rd, split)
    else:
        members, teacher = stage_teachers(rd, split)

    transfer, labels, kinds = stage_transfer(rd, split)
    probs, test_probs, stats, test_stats = label_all(rd, teacher, transfer, split.test_texts)
    rd.ran["label"] = "ran" if stats.computed else "skipped"
    transfer, labels, kinds, probs, unsure = keep_confident(rd, transfer, labels, kinds, probs)
    sources = dict(Counter(kinds))

    signals = teacher_signals(rd, teacher, transfer, probs)
    student, train_log = stage_student(rd, split, transfer, signals, labels, teacher)
    student_probs = student.predict_proba(split.test_texts)
    teacher_pred = test_probs.argmax(1)
    probe = split.test_texts[:256]
    if split.multi_label:
        return _finish_multilabel(
            rd,
            split,
            teacher,
            student,
            test_probs,
            student_probs,
            transfer,
            sources,
            (stats, test_stats),
            train_log,
            start,
        )
    member_entries, agreement, (teacher_name, teacher_size, teacher_tput) = _teacher_facts(
        rd, split, teacher, members, test_probs, probe
    )
    report: dict[str, Any] = {
        "name": recipe.name,
        "tinystudent_version": __version__,
        "dataset": recipe.data.dataset,
        "k": recipe.data.k,
        "seed": recipe.data.seed,
        "label_names": split.label_names,
        "test_size": len(split.test_texts),
        "transfer_size": len(transfer),
        "transfer_sources": sources,
        "transfer_dropped_unsure": unsure,
        "data_cleaning": split.cleaning,
        "torch_threads": torch.get_num_threads(),
        "device": str(resolve_device(recipe.device)),
        "teacher": _system_entry(
            teacher_name,
            test_probs,
            split.test_labels,
            max(1, teacher.num_params()),  # a remote LLM's size is unknown (0)
            teacher_size,
            teacher_tput,
        ),
        "student": _system_entry(
            student.kind,
            student_probs,
            split.test_labels,
            student.num_params(),
            (rd.student / "student.safetensors").stat().st_size,
            throughput(student.predict_proba, probe, min_seconds=1.0),
            teacher_pred,
        ),
        "labeling": {"transfer": stats.__dict__, "test": test_stats.__dict__},
        "training": train_log,
        "stages": rd.ran,
    }
    report["systems"] = {**member_entries, "student (distilled)": report["student"]}
    if agreement:
        report["teachers"] = list(member_entries.values())
        report["teacher_agreement"] = agreement
        report["amalgamation"] = {
            "method": teacher.spec.method if isinstance(teacher, AmalgamatedTeacher) else None,
            **(teacher.fit_info if isinstance(teacher, AmalgamatedTeacher) else {}),
        }
    t_acc = report["teacher"]["accuracy"]
    report["student"]["pct_of_teacher"] = 100 * report["student"]["accuracy"] / t_acc
    report["student"]["compression"] = report["teacher"]["params"] / report["student"]["params"]
    report["seconds"] = time.perf_counter() - start
    preds = SplitPredictions(
        split.label_names, split.test_texts, split.test_labels, test_probs, student_probs
    )
    _save_report(rd, split, report, agreement, preds)
    return report


def _save_report(
    rd: RunDir,
    split: Split,
    report: dict[str, Any],
    agreement: dict[str, dict[str, float]],
    preds: SplitPredictions,
) -> None:
    """report.json, report.md, predictions.json and the page built from them."""
    write_json(rd.root / "report.json", report)
    markdown = render_markdown(report) + cleaning_markdown(split.cleaning)
    if agreement:
        markdown += "\n" + agreement_markdown(agreement)
    write_text(rd.root / "report.md", markdown)
    save_predictions(rd.root, preds)
    write_report_html(rd.root)


def _teacher_facts(
    rd: RunDir,
    split: Split,
    teacher: AnyTeacher | AmalgamatedTeacher,
    members: list[tuple[str, AnyTeacher]],
    test_probs: np.ndarray,
    probe: list[str],
) -> tuple[dict[str, dict[str, Any]], dict[str, dict[str, float]], tuple[str, int, float]]:
    """The members' entries and agreement (several teachers), and the teacher's name, size on
    disk and throughput for the report."""
    if not isinstance(teacher, AmalgamatedTeacher):
        size, tput = kind_of(rd.recipe.teacher).cost(teacher, rd.teacher, probe)
        return {}, {}, (rd.recipe.teacher.model, size, tput)
    entries, agreement = _member_report(rd, split, members, test_probs, probe)
    size = sum(e["size_bytes"] for e in entries.values())
    # the members run one after another on each text: their times add up
    tput = 1.0 / sum(1.0 / max(e["throughput"], 1e-9) for e in entries.values())
    return entries, agreement, (f"amalgamated ({teacher.spec.method})", size, tput)


def cleaning_markdown(cleaning: dict[str, Any]) -> str:
    """One line for the report when loading changed the data (conflicts, duplicates)."""
    parts = []
    if cleaning.get("conflicting_texts"):
        parts.append(
            f"{cleaning['conflicting_texts']} texts had conflicting labels; "
            f"data.on_conflict: {cleaning['on_conflict']} removed "
            f"{cleaning['conflict_rows_dropped']} rows"
        )
    if cleaning.get("duplicate_rows_dropped"):
        parts.append(f"{cleaning['duplicate_rows_dropped']} repeated rows were kept once")
    return "\nData: " + "; ".join(parts) + ".\n" if parts else ""


def _member_report(
    rd: RunDir,
    split: Split,
    members: list[tuple[str, AnyTeacher]],
    amalgamated_test: np.ndarray,
    probe: list[str],
) -> tuple[dict[str, dict[str, Any]], dict[str, dict[str, float]]]:
    """Each teacher's test entry (in the union label space; agreement is with the amalgamated
    teacher) and the pairwise agreement of all teachers, amalgamated included."""
    entries: dict[str, dict[str, Any]] = {}
    preds: dict[str, np.ndarray] = {}
    amalgamated_pred = amalgamated_test.argmax(1)
    assert rd.recipe.teachers is not None
    for i, (name, t) in enumerate(members):
        probs, _ = label_texts(
            t, split.test_texts, rd.cache, rd.recipe.label.shard_size, desc=f"{name} on test"
        )
        probs = to_union(probs, t.label_names, split.label_names)
        cost = kind_of(rd.recipe.teachers[i].config).cost
        size, tput = cost(t, rd.root / "teachers" / str(i), probe)
        entry = _system_entry(
            name, probs, split.test_labels, max(1, t.num_params()), size, tput, amalgamated_pred
        )
        entry["labels"] = list(t.label_names)
        entries[f"teacher {name}"] = entry
        preds[name] = probs.argmax(1)
    preds["amalgamated"] = amalgamated_pred
    return entries, agreement_matrix(preds)


def _finish_multilabel(
    rd: RunDir,
    split: Split,
    teacher: Any,
    student: Student,
    test_probs: np.ndarray,
    student_probs: np.ndarray,
    transfer: list[str],
    sources: dict[str, int],
    label_stats: tuple[LabelStats, LabelStats],
    train_log: dict[str, Any],
    start: float,
) -> dict[str, Any]:
    """The report of a multi-label run: micro-F1, macro-F1 and subset accuracy of teacher and
    student, each deciding at its own per-label thresholds."""
    recipe = rd.recipe
    probe = split.test_texts[:256]
    targets = np.asarray(split.test_targets)
    teacher_dec = decide(test_probs, teacher.thresholds)
    student_dec = decide(student_probs, student.thresholds or [])
    size, tput = kind_of(rd.recipe.teacher).cost(teacher, rd.teacher, probe)
    t_entry: dict[str, Any] = {
        "name": recipe.teacher.model,
        **multilabel_metrics(targets, teacher_dec),
    }
    t_entry.update(
        params=teacher.num_params(),
        size_bytes=size,
        throughput=tput,
        thresholds=list(teacher.thresholds),
    )
    s_entry: dict[str, Any] = {"name": student.kind, **multilabel_metrics(targets, student_dec)}
    s_entry.update(
        params=student.num_params(),
        size_bytes=(rd.student / "student.safetensors").stat().st_size,
        throughput=throughput(student.predict_proba, probe, min_seconds=1.0),
        thresholds=list(student.thresholds or []),
        agreement_with_teacher=float((student_dec == teacher_dec).all(1).mean()),
    )
    t_f1 = t_entry["micro_f1"]
    s_entry["pct_of_teacher"] = 100 * s_entry["micro_f1"] / t_f1 if t_f1 else float("nan")
    s_entry["compression"] = t_entry["params"] / s_entry["params"]
    stats, test_stats = label_stats
    report: dict[str, Any] = {
        "name": recipe.name,
        "tinystudent_version": __version__,
        "multi_label": True,
        "dataset": recipe.data.dataset,
        "k": recipe.data.k,
        "seed": recipe.data.seed,
        "label_names": split.label_names,
        "test_size": len(split.test_texts),
        "transfer_size": len(transfer),
        "transfer_sources": sources,
        "data_cleaning": split.cleaning,
        "torch_threads": torch.get_num_threads(),
        "device": str(resolve_device(recipe.device)),
        "teacher": t_entry,
        "student": s_entry,
        "labeling": {"transfer": stats.__dict__, "test": test_stats.__dict__},
        "training": train_log,
        "stages": rd.ran,
    }
    report["systems"] = {"student (distilled)": s_entry}
    report["seconds"] = time.perf_counter() - start
    write_json(rd.root / "report.json", report)
    write_text(rd.root / "report.md", render_markdown(report) + cleaning_markdown(split.cleaning))
    return report
