"""A rationale run resumes through `stages.json` like every kind of run: a finished run reruns
without training, a killed one continues from its checkpoint, and a run directory from before
`stages.json` (keys in each artifact's metadata) still resumes."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

import tinystudent.rationale.pipeline as pipeline_mod
import tinystudent.rationale.train as train_mod
from tests.rationale.conftest import recipe_file
from tinystudent.rationale.recipe import RationaleRecipe, load_rationale_recipe
from tinystudent.rationale.student import META

STAGES = ("rationales", "baseline", "student")


def _recipe(tmp_path: Path, tiny_lm_dir: Path, steps: int = 4) -> RationaleRecipe:
    return load_rationale_recipe(recipe_file(tmp_path, tiny_lm_dir, steps=steps))


def _run(recipe: RationaleRecipe, out: Path) -> dict[str, Any]:
    return pipeline_mod.run_rationale(recipe, out, progress=False)


def _no_training(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("the student was trained again")

    monkeypatch.setattr(pipeline_mod, "train_student", refuse)


def test_finished_run_reruns_from_stages_json(tmp_path, tiny_lm_dir, monkeypatch):
    recipe, out = _recipe(tmp_path, tiny_lm_dir), tmp_path / "run"
    first = _run(recipe, out)
    assert first["stages"] == dict.fromkeys(STAGES, "ran")
    recorded = json.loads((out / "stages.json").read_text())
    assert sorted(recorded) == sorted(STAGES)
    # The keys live in stages.json only, not again in each artifact's metadata.
    assert "key" not in json.loads((out / "student" / META).read_text())
    assert "key" not in json.loads((out / "rationales.json").read_text())

    _no_training(monkeypatch)
    again = _run(recipe, out)
    assert again["stages"] == dict.fromkeys(STAGES, "skipped")
    assert again["train"] == first["train"]
    assert again["untrained"] == first["untrained"]


def test_killed_run_resumes_from_its_checkpoint(tmp_path, tiny_lm_dir, monkeypatch):
    recipe, out = _recipe(tmp_path, tiny_lm_dir), tmp_path / "run"
    calls = {"n": 0}
    real_mix = train_mod.mix_losses

    def killed_at_step_4(*args: Any, **kwargs: Any) -> Any:
        calls["n"] += 1
        if calls["n"] == 4:
            raise KeyboardInterrupt("simulated kill")
        return real_mix(*args, **kwargs)

    monkeypatch.setattr(train_mod, "mix_losses", killed_at_step_4)
    with pytest.raises(KeyboardInterrupt):
        _run(recipe, out)
    monkeypatch.setattr(train_mod, "mix_losses", real_mix)
    assert (out / "checkpoint").is_dir() and not (out / "student").exists()
    assert "student" not in json.loads((out / "stages.json").read_text())

    report = _run(recipe, out)
    assert report["stages"] == {"rationales": "skipped", "baseline": "skipped", "student": "ran"}
    assert report["train"]["resumed_from"] == 2 and report["train"]["steps"] == 4
    assert not (out / "checkpoint").exists()


def test_run_dir_from_before_stages_json_still_resumes(tmp_path, tiny_lm_dir, monkeypatch):
    recipe, out = _recipe(tmp_path, tiny_lm_dir), tmp_path / "run"
    first = _run(recipe, out)
    # Rewrite the directory as the old scheme left it: no stages.json, each key in metadata.
    keys = json.loads((out / "stages.json").read_text())
    (out / "stages.json").unlink()
    for stage, meta in (
        ("rationales", out / "rationales.json"),
        ("baseline", out / "baseline.json"),
        ("student", out / "student" / META),
    ):
        meta.write_text(json.dumps({**json.loads(meta.read_text()), "key": keys[stage]}))

    _no_training(monkeypatch)
    again = _run(recipe, out)
    assert again["stages"] == dict.fromkeys(STAGES, "skipped")
    assert again["train"] == first["train"]
    assert json.loads((out / "stages.json").read_text()) == keys
    assert "key" not in again["rationales"]


def test_old_metadata_of_another_recipe_is_not_adopted(tmp_path, tiny_lm_dir):
    out = tmp_path / "run"
    _run(_recipe(tmp_path, tiny_lm_dir, steps=2), out)
    keys = json.loads((out / "stages.json").read_text())
    (out / "stages.json").unlink()
    meta = out / "student" / META
    meta.write_text(json.dumps({**json.loads(meta.read_text()), "key": keys["student"]}))

    report = _run(_recipe(tmp_path, tiny_lm_dir, steps=4), out)  # another budget: retrain
    assert report["stages"]["student"] == "ran" and report["train"]["steps"] == 4
