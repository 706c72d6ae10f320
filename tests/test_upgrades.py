"""Upgrades: a bumped stage `CODE_VERSION` reruns that stage and all after it; nothing else.

An existing run directory is rerun with one module's `CODE_VERSION` raised, as if the code had
been upgraded under it; `report["stages"]` says which stages ran again.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tinystudent.code_version import versioned
from tinystudent.data import split as split_code
from tinystudent.label import cache as label_code
from tinystudent.pipeline import run
from tinystudent.recipe import parse_recipe
from tinystudent.teachers import encoder as encoder_code
from tinystudent.teachers import frozen as frozen_code
from tinystudent.teachers import llm as llm_code
from tinystudent.train import loop as train_code

ALL = ("data", "teacher", "label", "student")


@pytest.fixture(scope="module")
def recipe(toy_csv: Path, tiny_teacher_dir: Path):
    return parse_recipe(
        {
            "data": {"dataset": str(toy_csv), "k": 4, "test_size": 30, "max_pool": 60},
            "teacher": {"model": str(tiny_teacher_dir), "epochs": 2, "lr": 2e-3},
            "student": {"kind": "bag", "embed_dim": 16, "head_hidden": 0},
            "train": {"epochs": 1, "batch_size": 32},
        }
    )


@pytest.fixture(scope="module")
def finished(recipe, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("upgrade")
    assert run(recipe, out)["stages"] == dict.fromkeys(ALL, "ran")
    return out


def rerun(recipe, finished: Path, tmp_path: Path) -> dict:
    copy = tmp_path / "run"
    shutil.copytree(finished, copy)
    return run(recipe, copy)


def test_versioned_keeps_version_one_keys() -> None:
    assert versioned("abc", 1, 1) == "abc"  # directories made before versions stay valid
    assert versioned("abc", 2, 1) != versioned("abc", 1, 2) != "abc"


def test_unrelated_upgrade_keeps_every_artifact(recipe, finished, tmp_path, monkeypatch) -> None:
    # the run fine-tunes an encoder teacher: new LLM or frozen-teacher code does not concern it
    monkeypatch.setattr(llm_code, "CODE_VERSION", 2)
    monkeypatch.setattr(frozen_code, "CODE_VERSION", 7)
    report = rerun(recipe, finished, tmp_path)
    assert report["stages"] == dict.fromkeys(ALL, "skipped")
    assert report["labeling"]["transfer"]["computed"] == 0


@pytest.mark.parametrize(
    ("module", "reran"),
    [
        (train_code, {"student"}),
        (label_code, {"label", "student"}),
        (encoder_code, {"teacher", "label", "student"}),
        # the labels are content-keyed (teacher weights + text): this bump changed neither
        (split_code, {"data", "teacher", "student"}),
    ],
    ids=["train", "label", "teacher", "data"],
)
def test_upgraded_stage_reruns_with_what_follows(
    recipe, finished, tmp_path, monkeypatch, module, reran
) -> None:
    monkeypatch.setattr(module, "CODE_VERSION", module.CODE_VERSION + 1)
    report = rerun(recipe, finished, tmp_path)
    assert report["stages"] == {s: "ran" if s in reran else "skipped" for s in ALL}
    labeled = report["labeling"]["transfer"]["computed"]
    assert labeled == (report["transfer_size"] if "label" in reran else 0)
