"""A bench unit is a pipeline run: its artifacts live in a run directory, and a bench killed
mid-unit resumes through that directory's `stages.json` without refitting or retraining."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from tinystudent.bench import parse_bench, run_benchmark
from tinystudent.bench.spec import quick_spec, student_recipe, unit_recipe
from tinystudent.pipeline import RunDir, member_key, stage_data, student_key
from tinystudent.students import load_student
from tinystudent.teachers.frozen import FrozenEncoderTeacher
from tinystudent.teachers.registry import load_saved

TINY_BAG = {"kind": "bag", "embed_dim": 8, "head_hidden": 0, "init": "random"}


@pytest.fixture
def bench(toy_csv: Path, tiny_teacher_dir: Path, tmp_path: Path):
    return parse_bench(
        {
            "name": "units",
            "data": {"dataset": str(toy_csv), "test_size": 40},
            "ks": [4],
            "seeds": [0, 1],
            "teachers": {"enc": {"kind": "frozen", "model": str(tiny_teacher_dir), "c": 1.0}},
            "students": {"bag": TINY_BAG},
            "baselines": {},
            "train": {"batch_size": 32},
            "cache_dir": str(tmp_path / "cache"),
        }
    )


def _count_fits(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Every frozen-teacher fit appends its seed."""
    real = FrozenEncoderTeacher.fit
    seeds: list[int] = []

    def counted(self: FrozenEncoderTeacher, texts: list[str], labels: list[int], seed: int = 0):
        seeds.append(seed)
        return real(self, texts, labels, seed)

    monkeypatch.setattr(FrozenEncoderTeacher, "fit", counted)
    return seeds


def test_unit_artifacts_are_a_pipeline_run_directory(bench, tmp_path: Path) -> None:
    doc = run_benchmark(bench, tmp_path / "out", quick=True, say=lambda _m: None)
    unit = tmp_path / "out" / "units.runs" / "k4-seed1-quick"
    quick = quick_spec(bench)  # what a quick run benches
    recipe = unit_recipe(quick, 4, 1)
    run = RunDir(unit, recipe)
    # the pipeline's own stages, keyed as the pipeline keys them
    assert recipe.teachers is not None
    key = member_key(recipe, recipe.teachers[0])
    assert run.is_done("teacher0", key, unit / "teachers" / "0" / "teacher.json")
    kd = student_recipe(quick, recipe, "bag", "enc")
    slot = run.slot("student:bag (KD enc)", "students/bag_KD_enc")
    assert run.is_done(slot.stage, student_key(kd), slot.out / "student.json")
    split = stage_data(run)  # the data stage is done too: read back, not redone
    assert run.ran["data"] == "skipped"
    # the saved models are the ones scored: reloading them gives the row's accuracy
    test_texts, y = split.test_texts, np.asarray(split.test_labels)
    student = load_student(slot.out)
    row = next(r for r in doc["runs"] if r["system"] == "bag (KD enc)" and r["seed"] == 1)
    acc = float((student.predict_proba(test_texts).argmax(1) == y).mean())
    assert acc == pytest.approx(row["accuracy"])
    teacher = load_saved(unit / "teachers" / "0", bench.cache_root())
    t_row = next(r for r in doc["runs"] if r["system"] == "enc (teacher)" and r["seed"] == 1)
    t_acc = float((teacher.predict_proba(test_texts).argmax(1) == y).mean())
    assert t_acc == pytest.approx(t_row["accuracy"])
    assert json.loads((unit / "recipe.json").read_text())["data"]["k"] == 4


def test_killed_after_a_teacher_resumes_without_refitting(
    bench, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import tinystudent.bench.systems as systems

    fits = _count_fits(monkeypatch)
    real_stage_student = systems.stage_student

    def killed(*args: object, **kwargs: object) -> None:
        raise KeyboardInterrupt("killed after the teacher of unit 1")

    monkeypatch.setattr(systems, "stage_student", killed)
    with pytest.raises(KeyboardInterrupt):
        run_benchmark(bench, tmp_path, quick=True, say=lambda _m: None)
    assert fits == [0]  # unit 1 (seed 0) fitted its teacher, then died before any student
    monkeypatch.setattr(systems, "stage_student", real_stage_student)
    lines: list[str] = []
    doc = run_benchmark(bench, tmp_path, quick=True, say=lines.append)
    assert fits == [0, 1]  # only unit 2's teacher was fitted on the rerun: unit 1's reloaded
    assert {(r["seed"], r["system"]) for r in doc["runs"]} == {
        (s, n) for s in (0, 1) for n in ("enc (teacher)", "bag (KD enc)", "bag (gold only)")
    }
    # a finished bench rerun fits and trains nothing
    trained: list[int] = []
    monkeypatch.setattr(systems, "stage_student", lambda *a, **k: trained.append(1))
    again = run_benchmark(bench, tmp_path, quick=True, say=lines.append)
    assert fits == [0, 1] and not trained
    assert again["runs"] == doc["runs"]


def test_the_amalgamated_recipe_is_a_bench_spec() -> None:
    from tinystudent.bench import load_bench

    spec = load_bench("recipes/rotten_tomatoes_amalgamated.yaml")
    assert list(spec.teachers) == ["frozen:minilm-l6", "llm:smollm2-135m"]
    assert spec.amalgamation is not None and spec.amalgamation.combine.method == "uncertainty"
    assert spec.kd_teachers == ["amalgamated (uncertainty)"] == [spec.headline_teacher]
    assert spec.baselines["model2vec-lr"].options == {"teacher": "minilm-l6"}
    # each (k, seed) is the recipe's own teachers list: the pipeline amalgamates it
    unit = unit_recipe(spec, 8, 1)
    assert unit.amalgamation == spec.amalgamation.combine and unit.data.seed == 1


def test_an_amalgamated_recipe_benches(
    toy_csv: Path, tiny_teacher_dir: Path, tmp_path: Path
) -> None:
    import yaml

    from tinystudent.cli import main

    pytest.importorskip("fasttext")  # a recipe is benched with the three default baselines
    pytest.importorskip("model2vec")
    member = {"kind": "frozen", "model": str(tiny_teacher_dir), "c": 1.0}
    recipe = {
        "name": "amal",
        "data": {"dataset": str(toy_csv), "test_size": 40},
        "teachers": [member, {**member, "c": 10.0, "name": "strong"}],
        "amalgamation": {"method": "average"},
        "student": TINY_BAG,
    }
    path = tmp_path / "amal.yaml"
    path.write_text(yaml.safe_dump(recipe))
    out = tmp_path / "out"
    args = ["bench", str(path), "--quick", "--out", str(out), "--cache", str(tmp_path / "c")]
    assert main(args) == 0
    doc = json.loads((out / "amal.json").read_text())
    both = f"frozen:{tiny_teacher_dir} (teacher)", "strong (teacher)"
    assert set(doc["systems"]) >= {*both, "amalgamated (average) (teacher)"}
    assert doc["headline_teacher"] == "amalgamated (average)"
    student = doc["systems"]["bag (KD amalgamated (average))"]
    assert student["teacher"] == "amalgamated (average)"
    amalgamated = doc["systems"]["amalgamated (average) (teacher)"]
    members = [doc["systems"][name] for name in both]
    assert amalgamated["size_bytes"] == sum(m["size_bytes"] for m in members)
    assert amalgamated["speed"]["threads=1"]["throughput_tps"] < min(
        m["speed"]["threads=1"]["throughput_tps"] for m in members
    )
