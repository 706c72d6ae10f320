"""Every objective kind from a recipe: it trains, logs its named part, and changes the result.

Runs the real pipeline on the toy data with the tiny random BERT as a frozen teacher (its
embeddings and layers are real model outputs), sharing one label cache across runs.
"""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

import pytest
import torch
from safetensors.torch import load_file
from torch import Tensor

from tinystudent.errors import RecipeError
from tinystudent.pipeline import run
from tinystudent.recipe import parse_recipe
from tinystudent.train import Objective, TrainBatch, register_objective
from tinystudent.train.objectives import OBJECTIVES

PQRNN = {"kind": "pqrnn", "hidden": 8, "bottleneck": 16, "features": 32, "max_tokens": 16}


def _transformer(teacher_dir: Path, attentions: bool = False) -> dict:
    return {
        "kind": "transformer",
        "init": "random",
        "tokenizer": "teacher",
        "teacher_model": str(teacher_dir),
        "layers": 1,
        "hidden": 16,
        "heads": 2,
        "intermediate": 32,
        "max_tokens": 16,
        "attentions": attentions,
    }


def _recipe(
    toy_csv: Path, teacher_dir: Path, cache: Path, student: dict, objectives, **train_extra
):
    train: dict = {"epochs": 2, "batch_size": 32, **train_extra}
    if objectives is not None:
        train["objectives"] = objectives
    return parse_recipe(
        {
            "name": "objectives",
            "data": {"dataset": str(toy_csv), "k": 8, "test_size": 40},
            "teacher": {"kind": "frozen", "model": str(teacher_dir)},
            "student": student,
            "train": train,
            "label": {"cache_dir": str(cache), "shard_size": 64},
        }
    )


def _run(tmp_path: Path, name: str, recipe) -> tuple[dict, dict[str, Tensor]]:
    out = tmp_path / name
    report = run(recipe, out)
    return report, load_file(str(out / "student" / "student.safetensors"))


def _differ(a: dict[str, Tensor], b: dict[str, Tensor]) -> bool:
    return any(not torch.equal(a[k], b[k]) for k in a)


BASE = [{"kind": "kd", "weight": 0.9}, {"kind": "ce", "weight": 0.1}]


@pytest.fixture(scope="module")
def base_runs(toy_csv: Path, tiny_teacher_dir: Path, tmp_path_factory: pytest.TempPathFactory):
    """The kd + ce run of each student the tests compare against."""
    root = tmp_path_factory.mktemp("objectives")
    cache = root / "cache"
    students = {
        "pqrnn": PQRNN,
        "transformer": _transformer(tiny_teacher_dir),
        "transformer-att": _transformer(tiny_teacher_dir, attentions=True),
    }
    runs = {
        name: _run(root, name, _recipe(toy_csv, tiny_teacher_dir, cache, s, BASE))
        for name, s in students.items()
    }
    return root, cache, students, runs


@pytest.mark.parametrize(
    ("entry", "student", "part"),
    [
        ({"kind": "mse", "weight": 0.5}, "pqrnn", "mse"),
        ({"kind": "rdrop", "weight": 1.0}, "pqrnn", "rdrop"),
        ({"kind": "embedding", "loss": "both"}, "pqrnn", "embedding"),
        ({"kind": "contrastive", "temperature": 0.2}, "pqrnn", "contrastive"),
        ({"kind": "hidden", "weight": 2.0}, "transformer", "hidden"),
        ({"kind": "attention", "weight": 5.0}, "transformer-att", "attention"),
    ],
)
def test_objective_from_recipe_trains_and_changes_weights(
    base_runs, toy_csv: Path, tiny_teacher_dir: Path, entry: dict, student: str, part: str
) -> None:
    root, cache, students, runs = base_runs
    recipe = _recipe(toy_csv, tiny_teacher_dir, cache, students[student], [*BASE, entry])
    report, weights = _run(root, f"{student}-{entry['kind']}", recipe)
    history = report["training"]["history"]
    assert all(part in row and row[part] == row[part] for row in history)  # logged, not NaN
    assert history[0][part] > 0
    assert _differ(weights, runs[student][1])


def test_classic_keys_are_kd_plus_ce(base_runs, toy_csv: Path, tiny_teacher_dir: Path) -> None:
    """No objectives listed: temperature/alpha map onto kd + ce, and give the same student."""
    root, cache, students, runs = base_runs
    recipe = _recipe(toy_csv, tiny_teacher_dir, cache, students["pqrnn"], None)
    assert [o.resolved() for o in recipe.train.resolved_objectives()] == [
        {"kind": "kd", "weight": 0.9, "temperature": 2.0},
        {"kind": "ce", "weight": pytest.approx(0.1)},
    ]
    _, weights = _run(root, "classic", recipe)
    assert not _differ(weights, runs["pqrnn"][1])


def test_schedule_from_recipe_moves_temperature(
    base_runs, toy_csv: Path, tiny_teacher_dir: Path
) -> None:
    root, cache, students, runs = base_runs
    schedule = {"kind": "cosine", "temperature": [8.0, 1.0], "weights": {"ce": [0.0, 0.5]}}
    recipe = _recipe(toy_csv, tiny_teacher_dir, cache, students["pqrnn"], BASE, schedule=schedule)
    report, weights = _run(root, "scheduled", recipe)
    temps = [row["schedule.temperature"] for row in report["training"]["history"]]
    assert temps[0] > temps[-1] >= 1.0
    assert _differ(weights, runs["pqrnn"][1])


@register_objective
class LogitNorm(Objective):
    """A test-only objective: penalise large logits."""

    kind: ClassVar[str] = "test-logit-norm"

    def forward(self, out, batch: TrainBatch) -> dict[str, Tensor]:
        return {"logit_norm": self.weight * out.logits.pow(2).mean()}


def test_a_new_objective_is_one_class_and_one_registration(
    base_runs, toy_csv: Path, tiny_teacher_dir: Path
) -> None:
    root, cache, students, runs = base_runs
    entry = {"kind": "test-logit-norm", "weight": 3.0}
    recipe = _recipe(toy_csv, tiny_teacher_dir, cache, students["pqrnn"], [*BASE, entry])
    report, weights = _run(root, "custom", recipe)
    assert "logit_norm" in report["training"]["history"][0]
    assert _differ(weights, runs["pqrnn"][1])
    assert OBJECTIVES["test-logit-norm"] is LogitNorm


def test_layer_matching_needs_the_teachers_tokens(
    base_runs, toy_csv: Path, tiny_teacher_dir: Path
) -> None:
    root, cache, students, _ = base_runs
    recipe = _recipe(
        toy_csv, tiny_teacher_dir, cache, students["pqrnn"], [*BASE, {"kind": "hidden"}]
    )
    with pytest.raises(RecipeError, match="tokenizes as the teacher"):
        run(recipe, root / "bad-hidden")


@pytest.mark.parametrize(
    ("train", "message"),
    [
        ({"objectives": [{"kind": "nope"}]}, "train.objectives.0: .*unknown objective kind"),
        ({"objectives": [{"kind": "kd", "temprature": 2}]}, "temprature"),
        ({"objectives": [{"kind": "kd", "weight": -1}]}, "weight"),
        ({"objectives": [{"kind": "kd"}], "alpha": 0.5}, "not both"),
        ({"objectives": [{"kind": "kd"}, {"kind": "kd"}]}, "appears twice"),
        ({"objectives": []}, "at least 1"),
    ],
)
def test_bad_objectives_are_one_clear_error(train: dict, message: str) -> None:
    with pytest.raises(RecipeError, match=message):
        parse_recipe({"train": train})
