"""The same pipeline with its optional stages switched on: augmentation, Ray labeling, DDP.

Each variant must give what the plain path gives where it should (labels, weights) and record
where its transfer texts came from.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import load_file

from tinystudent.pipeline import run
from tinystudent.recipe import parse_recipe


def recipe(toy_csv: Path, teacher: Path, **sections: dict) -> object:
    base = {
        "name": "toy",
        "data": {"dataset": str(toy_csv), "k": 8, "test_size": 40},
        "teacher": {"model": str(teacher), "epochs": 3, "lr": 2e-3},
        # No dropout/zoneout: the DDP run can then match the single-process run exactly.
        "student": {
            "kind": "pqrnn",
            "hidden": 16,
            "bottleneck": 32,
            "features": 64,
            "dropout": 0.0,
            "zoneout": 0.0,
        },
        "train": {"epochs": 2, "batch_size": 32},
    }
    base.update(sections)
    return parse_recipe(base)


def test_augmentation_grows_the_transfer_set(toy_csv, tiny_teacher_dir, tmp_path) -> None:
    plain = run(recipe(toy_csv, tiny_teacher_dir), tmp_path / "plain")
    aug = run(
        recipe(
            toy_csv,
            tiny_teacher_dir,
            generate={"enabled": True, "strategy": "none", "augment": ["mask", "ngram"]},
        ),
        tmp_path / "aug",
    )
    assert aug["transfer_sources"]["augmented"] > 0
    assert aug["transfer_size"] > plain["transfer_size"]
    assert aug["stages"]["generate"] == "ran"
    assert "augmented" in (tmp_path / "aug" / "report.md").read_text()
    # The leak guard is on by default: no test text reaches the transfer set.
    import json

    test_texts = set(json.loads((tmp_path / "aug/data/split.json").read_text())["test_texts"])
    gen = tmp_path / "aug" / "generate" / "augmented.jsonl"
    assert gen.exists()
    assert not {json.loads(x)["text"] for x in gen.read_text().splitlines()} & test_texts


def test_min_confidence_drops_unsure_machine_text(toy_csv, tiny_teacher_dir, tmp_path) -> None:
    """generate.min_confidence is read: augmented texts below it leave the transfer set after
    labeling, gold and pool text stay whatever the teacher thinks of them."""
    aug = {"enabled": True, "strategy": "none", "augment": ["mask", "ngram"]}
    loose = run(recipe(toy_csv, tiny_teacher_dir, generate=aug), tmp_path / "loose")
    strict = run(
        recipe(toy_csv, tiny_teacher_dir, generate={**aug, "min_confidence": 0.999}),
        tmp_path / "strict",
    )
    dropped = strict["transfer_dropped_unsure"]
    assert loose["transfer_dropped_unsure"] == 0
    assert dropped > 0
    assert strict["transfer_size"] == loose["transfer_size"] - dropped
    for source in ("gold", "pool"):
        assert strict["transfer_sources"][source] == loose["transfer_sources"][source]
    assert "dropped as unsure" in (tmp_path / "strict" / "report.md").read_text()


def test_ddp_and_ray_match_the_single_process_run(toy_csv, tiny_teacher_dir, tmp_path) -> None:
    pytest.importorskip("ray")
    single = run(recipe(toy_csv, tiny_teacher_dir), tmp_path / "one")
    scaled = run(
        recipe(
            toy_csv,
            tiny_teacher_dir,
            scale={"nproc": 2, "label_backend": "ray", "label_workers": 1},
        ),
        tmp_path / "two",
    )
    # Ray labels the transfer set and the test split in one pass over the same cache layout.
    one = single["labeling"]
    assert scaled["labeling"]["transfer"]["computed"] == (
        one["transfer"]["computed"] + one["test"]["computed"]
    )
    a = load_file(str(tmp_path / "one/student/student.safetensors"))
    b = load_file(str(tmp_path / "two/student/student.safetensors"))
    assert a.keys() == b.keys()
    for name in a:
        np.testing.assert_allclose(a[name], b[name], atol=1e-5, err_msg=name)
    assert scaled["student"]["accuracy"] == pytest.approx(single["student"]["accuracy"])
