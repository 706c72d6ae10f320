"""`teacher.seed`: a fine-tuned teacher's own training seed, so several fine-tunes of one model
(a seed ensemble) can be members of `teachers`; unset, the data's seed, as before."""

from __future__ import annotations

import json
from pathlib import Path

import torch

from tests.conftest import toy_rows
from tinystudent.pipeline import run
from tinystudent.recipe import Recipe, parse_recipe
from tinystudent.teachers.encoder import EncoderTeacherConfig
from tinystudent.teachers.registry import FitRequest, kind_of


def _weights(cfg: EncoderTeacherConfig, data_seed: int, tmp: Path) -> dict[str, torch.Tensor]:
    rows = toy_rows(16)
    texts, names = [t for t, _ in rows], sorted({label for _, label in rows})
    labels = [names.index(label) for _, label in rows]
    request = FitRequest(names, cfg, texts, labels, data_seed, tmp / "cache", None)
    teacher, _ = kind_of(cfg).fit(request)
    return {k: v.clone() for k, v in teacher.state_dict().items()}


def _same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return all(torch.equal(a[k], b[k]) for k in a)


def test_the_configs_seed_wins_over_the_datas(tiny_teacher_dir: Path, tmp_path: Path) -> None:
    base = EncoderTeacherConfig(model=str(tiny_teacher_dir), epochs=1, batch_size=8)
    unset = _weights(base, 3, tmp_path)
    assert _same(unset, _weights(base.model_copy(update={"seed": 3}), 0, tmp_path))
    assert not _same(unset, _weights(base.model_copy(update={"seed": 4}), 3, tmp_path))


def test_an_unset_seed_keeps_the_teacher_stage_hash() -> None:
    assert Recipe().section_hash("teacher") == parse_recipe({"teacher": {}}).section_hash("teacher")
    assert Recipe().section_hash("teacher") != parse_recipe({"teacher": {"seed": 0}}).section_hash(
        "teacher"
    )


def test_a_seed_ensemble_from_a_recipe(
    toy_csv: Path, tiny_teacher_dir: Path, tmp_path: Path
) -> None:
    member = {"model": str(tiny_teacher_dir), "epochs": 1, "batch_size": 8}
    recipe = parse_recipe(
        {
            "name": "toy-seeds",
            "data": {"dataset": str(toy_csv), "k": 8, "test_size": 40},
            "teachers": [{**member, "seed": 0, "name": "s0"}, {**member, "seed": 1, "name": "s1"}],
            "amalgamation": {"method": "average"},
            "student": {"kind": "bag", "embed_dim": 16, "init": "random", "head_hidden": 0},
            "train": {"epochs": 1, "batch_size": 32},
        }
    )
    report = run(recipe, tmp_path)
    saved = [json.loads((tmp_path / f"teachers/{i}/teacher.json").read_text()) for i in (0, 1)]
    assert [s["config"]["seed"] for s in saved] == [0, 1]
    a, b = (tmp_path / f"teachers/{i}/teacher.safetensors" for i in (0, 1))
    assert a.read_bytes() != b.read_bytes()
    assert set(report["teacher_agreement"]) == {"s0", "s1", "amalgamated"}
