"""The benchmark protocol in --quick mode on toy data: every system, the JSON, the Markdown."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from tinystudent.bench import (
    PROTOCOLS,
    Progress,
    load_bench,
    parse_bench,
    render_markdown,
    run_benchmark,
)
from tinystudent.errors import RecipeError

TINY_PQRNN = {"kind": "pqrnn", "features": 64, "bottleneck": 16, "hidden": 8, "layers": 1}
TINY_BAG = {"kind": "bag", "embed_dim": 8, "head_hidden": 0, "init": "random"}


@pytest.fixture(scope="module")
def spec(toy_csv: Path, tiny_teacher_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    cache = tmp_path_factory.mktemp("bench_cache")
    model = str(tiny_teacher_dir)
    return {
        "name": "toy",
        "data": {"dataset": str(toy_csv), "test_size": 40},
        "ks": [4, 8],
        "seeds": [0, 1, 2],
        "teachers": {
            # Fixed C keeps the test fast (the CV path is covered by the teacher tests).
            "small": {"kind": "frozen", "model": model, "max_length": 16, "c": 1.0},
            "big": {"kind": "frozen", "model": model, "temperature": "auto", "c": 10.0},
        },
        "headline": "big",
        "students": {"pqrnn": TINY_PQRNN, "bag": TINY_BAG},
        "baselines": {
            "tfidf-lr": {"kind": "tfidf-lr", "c": 10.0},
            "fasttext": {"kind": "fasttext", "dim": 8, "epoch": 5},
            "model2vec-lr": {"kind": "model2vec-lr", "teacher": model, "pca_dims": 8, "c": 10.0},
        },
        "train": {"batch_size": 32},
        "cache_dir": str(cache),
    }


@pytest.fixture(scope="module")
def result(spec: dict, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict, list[str]]:
    pytest.importorskip("fasttext")
    pytest.importorskip("model2vec")
    out = tmp_path_factory.mktemp("results")
    lines: list[str] = []
    doc = run_benchmark(parse_bench(spec), out, quick=True, say=lines.append)
    return out, doc, lines


def test_every_system_is_in_the_json(result: tuple[Path, dict, list[str]]) -> None:
    out, doc, _ = result
    saved = json.loads((out / "toy.json").read_text())
    assert saved["systems"].keys() == doc["systems"].keys()
    expected = {
        "big (teacher)",
        "small (teacher)",
        "pqrnn (KD big)",
        "pqrnn (KD small)",
        "pqrnn (gold only)",
        "bag (KD big)",
        "bag (KD small)",
        "bag (gold only)",
        "tfidf-lr",
        "fasttext",
        "model2vec-lr",
    }
    assert set(saved["systems"]) == expected
    for name, entry in saved["systems"].items():
        for k in ("4", "8"):
            acc = entry["by_k"][k]["accuracy"]
            assert acc["n"] == 2 and 0.0 <= acc["mean"] <= 1.0, name  # quick: two seeds
            assert entry["by_k"][k]["pct_of_teacher"]["n"] == 2
        assert entry["params"] > 0 and entry["size_bytes"] > 0, name
        assert set(entry["speed"]) == {"threads=1", "threads=all"}, name
        for row in entry["speed"].values():
            assert row["throughput_tps"] > 0 and row["p95_ms"] >= row["p50_ms"] > 0
            assert row["x_teacher"] > 0
    student = saved["systems"]["pqrnn (KD big)"]
    assert student["int8_bytes"] < student["size_bytes"]
    assert set(student["int8_speed"]) == {"threads=1", "threads=all"}
    assert student["teacher"] == "big" and saved["systems"]["pqrnn (gold only)"]["teacher"] is None
    # Every (k, seed, system) is a row; the KD student is scored against its own teacher.
    assert len(saved["runs"]) == 2 * 2 * len(expected)
    row = next(r for r in saved["runs"] if r["system"] == "bag (KD small)")
    assert row["reference_teacher"] == "small"
    for key in ("machine", "versions", "git_commit", "command"):
        assert key in saved["environment"]
    assert saved["budget"]["seconds"] > 0 and saved["quick"] is True
    assert saved["embedding"]["big"]["texts"] == saved["embedding"]["small"]["texts"]
    assert not (out / "toy.partial.json").exists()


def test_markdown_table(result: tuple[Path, dict, list[str]]) -> None:
    out, doc, _ = result
    md = (out / "toy.md").read_text()
    assert md == render_markdown(doc)
    table = [line for line in md.splitlines() if line.startswith("|")]
    assert len(table) == 2 + len(doc["systems"])
    assert table[2].startswith("| big (teacher)") or table[2].startswith("| small (teacher)")
    assert "accuracy k=4" in table[0] and "texts/s 1 thread" in table[0]
    assert " ± " in table[3]


def test_progress_names_system_seed_and_time_left(result: tuple[Path, dict, list[str]]) -> None:
    _, _, lines = result
    assert any("embedding" in line and "big" in line for line in lines)
    assert any("k=8 seed 1 (2/2)" in line and "pqrnn (KD big)" in line for line in lines)
    assert all("left]" in line for line in lines if line.startswith("[toy "))


def test_embeddings_are_reused_and_an_interrupted_run_resumes(
    spec: dict,
    result: tuple[Path, dict, list[str]],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from tinystudent.bench.systems import Unit

    _, first, _ = result
    assert first["embedding"]["big"]["computed"] > 0
    bench = parse_bench({**spec, "ks": [8], "students": {"bag": TINY_BAG}, "baselines": {}})
    real = Unit.run_all
    calls: list[int] = []

    def crash_on_second(self: Unit) -> object:
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt("simulated crash")
        return real(self)

    monkeypatch.setattr(Unit, "run_all", crash_on_second)
    with pytest.raises(KeyboardInterrupt):
        run_benchmark(bench, tmp_path, quick=True, say=lambda _m: None)
    assert (tmp_path / "toy.runs" / "k8-seed0-quick" / "unit.json").is_file()
    assert not (tmp_path / "toy.runs" / "k8-seed1-quick" / "unit.json").exists()
    monkeypatch.setattr(Unit, "run_all", real)
    lines: list[str] = []
    doc = run_benchmark(bench, tmp_path, quick=True, say=lines.append)
    assert any("resuming: 1 (k, seed) units already done" in line for line in lines)
    assert not any("seed 0 (1/2)" in line for line in lines)  # the finished unit is not redone
    assert doc["embedding"]["big"]["computed"] == 0  # same encoder, same texts: all cached
    assert {(r["k"], r["seed"]) for r in doc["runs"]} == {(8, 0), (8, 1)}
    assert "speed" in doc["systems"]["bag (KD big)"]  # measured in the unit that was kept
    assert not (tmp_path / "toy.partial.json").exists()  # one resume scheme: stages.json


def test_a_run_killed_inside_a_unit_keeps_its_finished_systems(
    spec: dict, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tinystudent.baselines.tfidf import TfidfLogReg

    bench = parse_bench(
        {
            **spec,
            "ks": [8],
            "students": {"bag": TINY_BAG},
            "baselines": {"tfidf-lr": {"kind": "tfidf-lr", "c": 1.0}},
        }
    )

    def killed(*args: object, **kwargs: object) -> None:
        raise KeyboardInterrupt("simulated kill")

    monkeypatch.setattr(TfidfLogReg, "fit", killed)
    with pytest.raises(KeyboardInterrupt):
        run_benchmark(bench, tmp_path, quick=True, say=lambda _m: None)
    unit = tmp_path / "toy.runs" / "k8-seed0-quick"
    stages = json.loads((unit / "stages.json").read_text())
    recorded = {s.removeprefix("system:") for s in stages if s.startswith("system:")}
    assert recorded >= {"bag (KD big)", "bag (gold only)"} and "tfidf-lr" not in recorded
    monkeypatch.undo()
    lines: list[str] = []
    doc = run_benchmark(bench, tmp_path, quick=True, say=lines.append)
    assert any("systems of unit k/seed 8/0 recorded" in line for line in lines)
    unit0 = [line for line in lines if "seed 0 (1/2)" in line]
    assert not any("student" in line for line in unit0)  # finished students are not retrained
    assert any("baseline tfidf-lr" in line for line in unit0)
    assert len(doc["runs"]) == 2 * 6 and "speed" in doc["systems"]["bag (KD big)"]


def test_progress_estimate_learns_from_finished_tasks() -> None:
    p = Progress("x", [("a", 10.0), ("a", 10.0), ("b", 100.0)], say=lambda _m: None)
    p.min_evidence = 5.0
    assert p.remaining() == 120.0
    p.done["a"] = [2.0]
    p.done_prior = 10.0
    # one "a" left at its measured 2 s, "b" at its prior scaled by 2/10.
    assert p.remaining() == pytest.approx(2.0 + 20.0)
    p.min_evidence = 60.0  # too little evidence yet: priors are kept as they are
    assert p.remaining() == pytest.approx(2.0 + 100.0)


def test_specs_and_errors(tmp_path: Path) -> None:
    for name, make in PROTOCOLS.items():
        s = make()
        assert s.name == name and s.headline_teacher == "mpnet-base"
        assert s.ks == [8, 64] and len(s.seeds) >= 3
        assert {"tfidf-lr", "fasttext", "model2vec-lr"} <= set(s.baselines)
    assert load_bench("rt").teachers["mpnet-base"].model == "mpnet-base"
    with pytest.raises(RecipeError, match="teachers.x.epochs: unknown key"):
        parse_bench({"teachers": {"x": {"kind": "frozen", "epochs": 2}}})
    with pytest.raises(RecipeError, match="unknown baseline 'svm'"):
        parse_bench({"baselines": {"svm": {"kind": "svm"}}})
    with pytest.raises(RecipeError, match="'nope' is not one of the teachers"):
        parse_bench({"ks": [8], "headline": "nope"})
    with pytest.raises(RecipeError, match="no such bench file"):
        load_bench(tmp_path / "missing.yaml")
    # A plain recipe is benched with its own teacher and student.
    path = tmp_path / "r.yaml"
    path.write_text(yaml.safe_dump({"name": "r", "student": {"kind": "bag"}}))
    from_recipe = load_bench(path)
    assert list(from_recipe.students) == ["bag"] and list(from_recipe.teachers) == ["minilm-l6"]


def test_cli_bench_quick(spec: dict, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("fasttext")
    from tinystudent.cli import main

    small = {
        **spec,
        "ks": [4],
        "students": {"bag": TINY_BAG},
        "baselines": {"tfidf-lr": {"kind": "tfidf-lr", "c": 1.0}},
    }
    path = tmp_path / "bench.yaml"
    path.write_text(yaml.safe_dump(small))
    assert main(["bench", str(path), "--quick", "--out", str(tmp_path / "out")]) == 0
    assert (tmp_path / "out" / "toy.json").is_file()
    assert "| big (teacher) |" in capsys.readouterr().out
