"""`tinystudent check`: any recipe kind validated without running, printed with its defaults;
bad recipes and bad flags are one-line errors with exit code 2."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from tinystudent.check import check_file, parse_any
from tinystudent.cli import main
from tinystudent.recipe import Recipe

ROOT = Path(__file__).parent.parent / "recipes"
RECIPES = sorted(ROOT.glob("*.yaml"))
EXPECTED_KIND = {"embed": "embed", "rationale": "rationale"}


@pytest.mark.parametrize("path", RECIPES, ids=lambda p: p.stem)
def test_every_shipped_recipe_checks_and_resolves(
    path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["check", str(path)]) == 0
    out = capsys.readouterr().out
    kind = EXPECTED_KIND.get(path.stem.split("_")[0], "pipeline")
    assert out.startswith(f"# {path}: a valid {kind} recipe")
    again = parse_any(yaml.safe_load(out), "resolved", kind)  # the output loads back
    _, original = check_file(path)
    skip = {"student", "train"}  # both come back resolved: compare them resolved
    assert again.model_dump(exclude=skip) == original.model_dump(exclude=skip)
    if isinstance(original, Recipe):
        assert again.train.resolved() == original.train.resolved()
        assert again.section_hash("train") == original.section_hash("train")


def test_pipeline_defaults_are_filled_in(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    r = tmp_path / "r.yaml"
    r.write_text("data: {dataset: reviews.csv, k: 8}\nstudent: {kind: pqrnn, hidden: 16}\n")
    assert main(["check", str(r)]) == 0
    out = yaml.safe_load(capsys.readouterr().out)
    assert out["data"]["k"] == 8 and out["data"]["on_conflict"] == "error"
    assert out["student"]["hidden"] == 16 and out["student"]["features"] == 256  # a default
    assert out["teacher"]["kind"] == "finetune" and "teachers" not in out
    assert out["train"]["epochs"] == 8


def test_bench_protocol_and_spec(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check", "rt"]) == 0
    out = yaml.safe_load(capsys.readouterr().out)
    assert out["students"]["bag"]["kind"] == "bag" and out["ks"] == [8, 64]
    bad = tmp_path / "b.yaml"
    bad.write_text("ks: [8]\nseeds: [0]\nstudents: {p: {kind: pqrnn, hiden: 3}}\n")
    assert main(["check", str(bad)]) == 2
    err = capsys.readouterr().err
    assert "hiden: unknown key" in err and "checked as a bench recipe: it has `ks`" in err


@pytest.mark.parametrize(
    ("content", "fragment"),
    [
        ("data: {k: 0}\n", "data.k: Input should be greater than or equal to 1"),
        ("data: {on_conflict: keep}\n", "data.on_conflict: Input should be 'error'"),
        ("rationales: {source: nowhere}\n", "checked as a rationale recipe"),
        ("objective: {mse: -1, bogus: 1}\n", "objective.bogus: unknown key"),
        ("data: [1\n", "not valid YAML"),
    ],
)
def test_bad_recipes_are_one_line_errors(
    tmp_path: Path, content: str, fragment: str, capsys: pytest.CaptureFixture[str]
) -> None:
    r = tmp_path / "r.yaml"
    r.write_text(content)
    assert main(["check", str(r)]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.startswith("error: ") and fragment in captured.err, captured.err


@pytest.mark.parametrize("verb", ["run", "check"])
@pytest.mark.parametrize("value", ["-1", "0"])
def test_nproc_below_one_is_rejected(
    verb: str, value: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    argv = [verb, str(ROOT / "rotten_tomatoes.yaml"), "--nproc", value]
    argv += ["--out", str(out)] * (verb == "run")
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [
        f"error: --nproc {value} (scale.nproc): Input should be greater than or equal to 1"
    ]
    assert not out.exists()  # nothing ran


def test_flags_are_checked_and_shown(capsys: pytest.CaptureFixture[str]) -> None:
    argv = [
        "check",
        "--data",
        "reviews.csv",
        "--k",
        "16",
        "--student",
        "bag",
        "--ray",
        "--nproc",
        "2",
    ]
    assert main(argv) == 0
    out = yaml.safe_load(capsys.readouterr().out)
    assert out["name"] == "reviews" and out["data"]["dataset"] == "reviews.csv"
    assert out["data"]["k"] == 16 and out["student"]["kind"] == "bag"
    assert out["scale"]["label_backend"] == "ray" and out["scale"]["nproc"] == 2
    assert main(["check", str(ROOT / "embed_minilm_bag.yaml"), "--k", "3"]) == 2
    assert "--k applies to pipeline recipes, not an embed recipe" in capsys.readouterr().err
    assert main(["check"]) == 2
    assert "give a recipe YAML, or --data FILE" in capsys.readouterr().err


def test_objectives_and_schedule_are_shown_resolved(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    r = tmp_path / "r.yaml"
    r.write_text(
        "train:\n  objectives:\n    - {kind: kd}\n    - {kind: embedding, weight: 0.5}\n"
        "  schedule: {temperature: [4, 1]}\n"
    )
    assert main(["check", str(r)]) == 0
    train = yaml.safe_load(capsys.readouterr().out)["train"]
    assert train["objectives"] == [
        {"kind": "kd", "weight": 1.0, "temperature": 2.0},
        {"kind": "embedding", "weight": 0.5, "loss": "cosine"},
    ]
    assert train["schedule"]["temperature"] == [4.0, 1.0]
    assert "alpha" not in train


ISSUE_KINDS = ("kd", "mse", "ce", "embedding", "hidden", "attention", "rdrop", "contrastive")


def test_every_objective_kind_and_a_schedule_are_shown(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Each kind the project offers checks from one recipe and comes back with its options."""
    entries = "".join(f"    - {{kind: {k}}}\n" for k in ISSUE_KINDS)
    r = tmp_path / "r.yaml"
    r.write_text(
        "train:\n  objectives:\n" + entries + "  schedule: {kind: cosine, temperature: [4, 1],"
        " weights: {ce: [0, 0.5], contrastive: [1, 0]}}\n"
    )
    assert main(["check", str(r)]) == 0
    train = yaml.safe_load(capsys.readouterr().out)["train"]
    shown = {o["kind"]: o for o in train["objectives"]}
    assert tuple(shown) == ISSUE_KINDS
    assert all(o["weight"] == 1.0 for o in shown.values())
    assert shown["contrastive"]["temperature"] > 0 and "mapping" in shown["hidden"]
    assert "mapping" in shown["attention"] and "loss" in shown["embedding"]
    assert train["schedule"] == {
        "kind": "cosine",
        "warmup_fraction": 1.0,
        "temperature": [4.0, 1.0],
        "weights": {"ce": [0.0, 0.5], "contrastive": [1.0, 0.0]},
    }
