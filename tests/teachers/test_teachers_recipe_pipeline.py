"""Recipes naming an LLM teacher or several teachers, and the pipeline that amalgamates them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tinystudent.data.split import Split
from tinystudent.errors import RecipeError
from tinystudent.pipeline import member_split, run
from tinystudent.recipe import Recipe, parse_recipe
from tinystudent.teachers.amalgamate import AmalgamationSpec
from tinystudent.teachers.frozen import FrozenTeacherConfig
from tinystudent.teachers.llm import LLMTeacherConfig


def test_llm_teacher_section() -> None:
    r = parse_recipe(
        {
            "teacher": {
                "kind": "llm",
                "shots": 2,
                "calibration": "temperature",
                "verbalizers": {"fresh": "positive", "rotten": "negative"},
            }
        }
    )
    assert isinstance(r.teacher, LLMTeacherConfig) and r.teacher.shots == 2
    assert r.teacher_sections == ("teacher",)


def test_teachers_list_flat_members() -> None:
    r = parse_recipe(
        {
            "teachers": [
                {"kind": "frozen", "model": "minilm-l6", "labels": ["fresh"], "name": "enc"},
                {"kind": "llm", "calibration": "contextual"},
                {"model": "minilm-l6", "epochs": 2},
            ],
            "amalgamation": {"method": "uncertainty", "mc_samples": 4},
        }
    )
    assert r.teachers is not None and len(r.teachers) == 3
    first = r.teachers[0]
    assert first.name == "enc" and first.labels == ["fresh"]
    assert isinstance(first.config, FrozenTeacherConfig)
    assert isinstance(r.teachers[1].config, LLMTeacherConfig)
    assert r.amalgamation == AmalgamationSpec(method="uncertainty", mc_samples=4)
    assert r.teacher_sections == ("teachers", "amalgamation")
    h = r.section_hash("teachers", "amalgamation")
    r2 = parse_recipe({"teachers": [{"kind": "llm"}], "amalgamation": {"method": "average"}})
    assert r2.section_hash("teachers", "amalgamation") != h


def test_old_recipes_keep_their_hashes() -> None:
    """Values computed by the code before `teachers`/`llm` existed (the student then defaulted
    to pQRNN; a recipe that names it keeps the hash it had)."""
    r = Recipe(student={"kind": "pqrnn"})
    assert r.section_hash("data", "teacher") == "93e484204d8ce4ed"
    # The student stage hashes the training section resolved (objectives spelled out) since
    # objectives exist: a new value, the same one whichever way the recipe writes kd + ce.
    assert r.section_hash("data", *r.teacher_sections, "generate", "student", "train") == (
        "e101e7a9498bb947"
    )
    explicit = parse_recipe(
        {
            "train": {
                "objectives": [{"kind": "kd", "weight": 0.9}, {"kind": "ce", "weight": 1 - 0.9}]
            }
        }
    )
    assert explicit.section_hash("train") == r.section_hash("train")
    f = parse_recipe({"teacher": {"kind": "frozen", "model": "mpnet-base", "temperature": "auto"}})
    assert f.section_hash("data", "teacher") == "4c8a81d8ab6be204"


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"teachers": [{"kind": "llm", "calibration": "platt"}]}, "teachers.0.calibration"),
        ({"teachers": [{"kind": "frozen", "c": -1}]}, "teachers.0.c"),
        ({"teachers": [{"kind": "llm", "bogus": 1}]}, "teachers.0.bogus: unknown key"),
        ({"teachers": [{"kind": "gpt"}]}, "unknown teacher kind 'gpt'"),
        ({"teachers": [{"kind": "llm", "labels": ["a", "a"]}]}, "labels repeat"),
        ({"teachers": []}, "teachers"),
        ({"teacher": {"kind": "llm"}, "teachers": [{"kind": "llm"}]}, "not both"),
        ({"amalgamation": {"method": "average"}}, "needs a teachers list"),
        ({"teachers": [{}], "amalgamation": {"method": "vote"}}, "amalgamation.method"),
        ({"teachers": [{}], "amalgamation": {"mc_samples": 0}}, "amalgamation.mc_samples"),
        ({"teacher": {"kind": "llm", "template": "no text"}}, "teacher.template"),
        ({"teacher": {"kind": "llm", "backend": "grpc"}}, "teacher.backend"),
    ],
)
def test_recipe_errors_name_the_field(data: dict, message: str) -> None:
    with pytest.raises(RecipeError, match=message.replace(".", r"\.").replace("(", r"\(")):
        parse_recipe(data)


def test_member_split_keeps_its_classes_only() -> None:
    split = Split(
        label_names=["a", "b", "c"],
        train_texts=["x", "y", "z", "w"],
        train_labels=[0, 1, 2, 1],
        test_texts=[],
        test_labels=[],
        pool=[],
    )
    part = member_split(split, ["c", "b"])
    assert part.label_names == ["c", "b"]
    assert part.train_texts == ["y", "z", "w"] and part.train_labels == [1, 0, 1]
    assert member_split(split, None) is split
    with pytest.raises(RecipeError, match=r"\['d'\]"):
        member_split(split, ["a", "d"])


def test_pipeline_amalgamates_teachers(
    toy_csv: Path, tiny_teacher_dir: Path, tiny_llm_dir: Path, tmp_path: Path
) -> None:
    recipe = parse_recipe(
        {
            "name": "toy-amalgam",
            "data": {"dataset": str(toy_csv), "k": 8, "test_size": 40},
            "teachers": [
                {"kind": "frozen", "model": str(tiny_teacher_dir), "name": "enc"},
                {"kind": "llm", "model": str(tiny_llm_dir), "calibration": "contextual"},
            ],
            "amalgamation": {"method": "uncertainty", "mc_samples": 3},
            "student": {"kind": "pqrnn", "hidden": 16, "bottleneck": 32, "features": 64},
            "train": {"epochs": 1, "batch_size": 32},
        }
    )
    report = run(recipe, tmp_path)
    assert report["teacher"]["name"] == "amalgamated (uncertainty)"
    names = [t["name"] for t in report["teachers"]]
    assert names == ["enc", f"llm:{tiny_llm_dir}"]
    assert set(report["systems"]) == {
        "teacher enc",
        f"teacher llm:{tiny_llm_dir}",
        "student (distilled)",
    }
    agree = report["teacher_agreement"]
    assert set(agree) == {*names, "amalgamated"} and agree["enc"]["enc"] == 1.0
    md = (tmp_path / "report.md").read_text()
    assert "Teacher-to-teacher agreement" in md and "amalgamated (uncertainty)" in md
    assert (tmp_path / "teachers" / "0" / "teacher.json").exists()
    assert json.loads((tmp_path / "teachers/1/teacher.json").read_text())["kind"] == "llm"
    assert (tmp_path / "cache" / "llm-scores").is_dir()
    # soft labels are cached under the amalgamated teacher's fingerprint: a rerun skips all
    again = run(recipe, tmp_path)
    assert again["stages"]["teacher0"] == again["stages"]["teacher1"] == "skipped"
    assert again["stages"]["label"] == "skipped" and again["stages"]["student"] == "skipped"
    assert again["teacher"]["accuracy"] == report["teacher"]["accuracy"]
    # another method: new amalgamated fingerprint, same fitted members
    other = recipe.model_copy(update={"amalgamation": AmalgamationSpec(method="average")})
    third = run(other, tmp_path)
    assert third["stages"]["teacher0"] == "skipped" and third["stages"]["label"] == "ran"
