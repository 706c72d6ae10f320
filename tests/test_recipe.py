"""Recipes: strict validation with errors naming the field; shipped recipes stay valid."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from tinystudent.errors import RecipeError
from tinystudent.recipe import default_recipe, load_recipe, parse_recipe

# Distillation recipes; `embed_*.yaml` are embed-distill recipes with their own schema and test.
RECIPES = sorted(
    p
    for p in (Path(__file__).parents[1] / "recipes").glob("*.yaml")
    if not p.name.startswith(("embed_", "rationale_"))  # their own loaders test those
)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"data": {"kk": 3}}, "data.kk: unknown key"),
        ({"data": {"k": "many"}}, "data.k: Input should be a valid integer"),
        ({"data": {"k": 0}}, "data.k: Input should be greater than or equal to 1"),
        ({"train": {"temperature": -1}}, "train.temperature"),
        ({"student": {"kind": "resnet"}}, "unknown student kind 'resnet'"),
        ({"student": {"kind": "pqrnn", "hiden": 3}}, "pqrnn option hiden: unknown key"),
        ({"teacher": {"epochs": 0}}, "teacher.epochs"),
        ({"surprise": 1}, "surprise: unknown key"),
        ([1, 2], "a recipe is a mapping"),
    ],
)
def test_errors_name_the_field(data: object, message: str) -> None:
    with pytest.raises(RecipeError, match=message):
        parse_recipe(data, "r.yaml")


def test_bad_yaml_and_missing_file(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("data: [unclosed\n")
    with pytest.raises(RecipeError, match="not valid YAML"):
        load_recipe(bad)
    with pytest.raises(RecipeError, match="no such recipe"):
        load_recipe(tmp_path / "missing.yaml")


def test_yaml_cannot_execute_code(tmp_path: Path) -> None:
    evil = tmp_path / "evil.yaml"
    evil.write_text("name: !!python/object/apply:os.system ['echo pwned']\n")
    with pytest.raises(RecipeError):
        load_recipe(evil)


@pytest.mark.parametrize("path", RECIPES, ids=lambda p: p.name)
def test_shipped_recipes_parse(path: Path) -> None:
    load_recipe(path)


def test_demo_recipe_file_matches_embedded_default() -> None:
    data = yaml.safe_load((Path(__file__).parents[1] / "recipes/rotten_tomatoes.yaml").read_text())
    assert parse_recipe(data) == default_recipe()


def test_section_hash_tracks_changes() -> None:
    a = default_recipe()
    b = parse_recipe(
        {
            "data": {"dataset": "rotten_tomatoes", "k": 64, "test_size": 2000},
            "name": "rotten_tomatoes-k64",
            "student": {"kind": "pqrnn", "hidden": 32},
        }
    )
    assert a.section_hash("data") == b.section_hash("data")
    assert a.section_hash("student") != b.section_hash("student")


def test_every_kind_of_run_keeps_its_key_under_one_helper() -> None:
    """`io.recipe_key` replaced four hand-built hashes; the keys old run directories were
    made with must not move (values computed before the change)."""
    from tinystudent.bench import PROTOCOLS
    from tinystudent.embeddings.recipe import EmbedRecipe
    from tinystudent.io import json_digest, recipe_key
    from tinystudent.rationale.recipe import RationaleRecipe

    assert EmbedRecipe().training_hash() == "58303e1daa16f01a"
    assert RationaleRecipe().training_hash() == "6e182e1f04827f79"
    assert RationaleRecipe().section_hash("rationales") == "60a731d826c52e60"
    # moved once on purpose: the protocol gained the mpnet peers
    assert PROTOCOLS["rt"]().digest() == "289c236d236dd745"
    # a model, a mapping of models and the plain dump all hash alike
    r = RationaleRecipe()
    assert recipe_key(r.data) == json_digest(r.data.model_dump(mode="json"))
    assert recipe_key({"data": r.data}) == json_digest({"data": r.data.model_dump(mode="json")})
    assert recipe_key(r, exclude={"evaluate"}) != recipe_key(r)
