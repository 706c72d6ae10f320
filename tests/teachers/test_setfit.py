"""The SetFit teacher on a tiny random BERT body, driven through recipes and `pipeline.run`."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

from tinystudent.data import load_dataset, make_split
from tinystudent.errors import RecipeError
from tinystudent.pipeline import run
from tinystudent.recipe import parse_recipe
from tinystudent.teachers import setfit as setfit_module
from tinystudent.teachers.frozen import SentenceEncoder
from tinystudent.teachers.setfit import SetFitTeacher, SetFitTeacherConfig

pytest.importorskip("setfit")

TINY_BAG = {"kind": "bag", "embed_dim": 8, "head_hidden": 0, "init": "random"}


def _recipe(toy_csv: Path, body: Path, **teacher: object) -> dict:
    return {
        "name": "toy-setfit",
        "data": {"dataset": str(toy_csv), "k": 8, "test_size": 40, "max_pool": 60},
        "teacher": {
            "kind": "setfit",
            "model": str(body),
            "num_iterations": 2,
            "max_length": 16,
            **teacher,
        },
        "student": TINY_BAG,
        "train": {"epochs": 1, "batch_size": 32},
    }


def test_recipe_section() -> None:
    r = parse_recipe({"teacher": {"kind": "setfit", "model": "minilm-l6", "num_iterations": 5}})
    assert isinstance(r.teacher, SetFitTeacherConfig) and r.teacher.num_iterations == 5
    assert r.teacher.epochs == 1 and r.teacher.batch_size == 16  # the library's defaults
    with pytest.raises(RecipeError, match=r"teacher\.num_iterations: Input should be greater"):
        parse_recipe({"teacher": {"kind": "setfit", "num_iterations": 0}})
    with pytest.raises(RecipeError, match=r"teacher\.c: unknown key"):
        parse_recipe({"teacher": {"kind": "setfit", "c": 1.0}})


def test_trains_saves_reloads_and_distils(
    toy_csv: Path, tiny_teacher_dir: Path, tmp_path: Path
) -> None:
    recipe = parse_recipe(_recipe(toy_csv, tiny_teacher_dir))
    report = run(recipe, tmp_path)
    tdir = tmp_path / "teacher"
    meta = json.loads((tdir / "teacher.json").read_text())
    assert meta["kind"] == "setfit" and meta["fit"]["pairs"] == 2 * 2 * 16
    # Our numpy head over the exported body reproduces setfit's own probabilities.
    assert meta["fit"]["max_abs_diff_vs_setfit"] < 1e-4
    assert (tdir / "body" / "model.safetensors").is_file() and (tdir / "head.safetensors").is_file()
    assert not list(tmp_path.rglob("*.pkl")) and not list(tmp_path.rglob("*.bin"))
    assert not (tmp_path / "teacher.ckpt").exists()
    # The contrastive phase really moved the body.
    base = SentenceEncoder.from_pretrained(str(tiny_teacher_dir), 16, normalize=False)
    loaded = SetFitTeacher.load(tdir)
    assert loaded.encoder.fingerprint != base.fingerprint
    assert loaded.fingerprint == meta["fingerprint"]
    # Reloaded, it gives the probabilities the run scored (the label cache is keyed on it).
    ds = load_dataset(str(toy_csv))
    split = make_split(ds, 8, 0, 40, 0)
    probs = loaded.predict_proba(split.test_texts, use_cache=False)
    acc = float((probs.argmax(1) == np.asarray(split.test_labels)).mean())
    assert acc == pytest.approx(report["teacher"]["accuracy"])
    assert loaded.predict_proba_samples(split.test_texts[:5], 3).shape == (3, 5, 2)
    # ... and it was distilled into the student.
    assert report["student"]["name"] == "bag" and (tmp_path / "student" / "student.json").exists()
    assert 0.0 <= report["student"]["agreement_with_teacher"] <= 1.0
    assert report["teacher"]["size_bytes"] > (tdir / "head.safetensors").stat().st_size
    again = run(recipe, tmp_path)
    assert again["stages"]["teacher"] == "skipped" and again["stages"]["label"] == "skipped"
    assert again["teacher"]["accuracy"] == report["teacher"]["accuracy"]


def test_a_kill_after_the_contrastive_phase_resumes_there(
    toy_csv: Path, tiny_teacher_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    recipe = parse_recipe(_recipe(toy_csv, tiny_teacher_dir))
    reference = run(recipe, tmp_path / "ref")

    def killed(self: SetFitTeacher, out_dir: Path) -> None:
        raise KeyboardInterrupt

    with monkeypatch.context() as m:
        m.setattr(SetFitTeacher, "save", killed)
        with pytest.raises(KeyboardInterrupt):
            run(recipe, tmp_path / "run")
    assert (tmp_path / "run" / "teacher.ckpt" / "body" / "model.safetensors").is_file()

    def no_second_phase(*args: object, **kwargs: object) -> None:
        raise AssertionError("the contrastive phase ran again")

    monkeypatch.setattr(setfit_module, "_contrastive", no_second_phase)
    resumed = run(recipe, tmp_path / "run")
    log = json.loads((tmp_path / "run" / "teacher" / "train_log.json").read_text())
    assert log["resumed_after_contrastive_phase"] is True
    assert not (tmp_path / "run" / "teacher.ckpt").exists()
    ref_meta = json.loads((tmp_path / "ref" / "teacher" / "teacher.json").read_text())
    meta = json.loads((tmp_path / "run" / "teacher" / "teacher.json").read_text())
    assert meta["fingerprint"] == ref_meta["fingerprint"]  # same seed, same teacher
    assert resumed["teacher"]["accuracy"] == reference["teacher"]["accuracy"]


def test_member_of_an_amalgamation(toy_csv: Path, tiny_teacher_dir: Path, tmp_path: Path) -> None:
    data = _recipe(toy_csv, tiny_teacher_dir)
    setfit_member = {**data.pop("teacher"), "name": "sf"}
    data["teachers"] = [setfit_member, {"kind": "frozen", "model": str(tiny_teacher_dir)}]
    data["amalgamation"] = {"method": "uncertainty", "mc_samples": 3}
    report = run(parse_recipe(data), tmp_path)
    assert report["teacher"]["name"] == "amalgamated (uncertainty)"
    assert "teacher sf" in report["systems"]
    saved = json.loads((tmp_path / "teachers" / "0" / "teacher.json").read_text())
    assert saved["kind"] == "setfit"


def test_missing_library_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "setfit", None)
    with pytest.raises(ImportError, match=r"tinystudent\[setfit\]"):
        setfit_module._import_setfit()
