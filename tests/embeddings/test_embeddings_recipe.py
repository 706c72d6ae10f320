"""Recipe validation: every mistake is reported with the dotted path of its field."""

from __future__ import annotations

import pytest

from tinystudent.embeddings.recipe import EmbedRecipe, load_embed_recipe, parse_embed_recipe
from tinystudent.errors import RecipeError


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ({"objectiv": {}}, "objectiv: unknown key"),
        ({"objective": {"cosine": -1}}, "objective.cosine"),
        ({"objective": {"mse": 0, "cosine": 0, "contrastive": 0}}, "objective"),
        ({"train": {"epochs": 0}}, "train.epochs"),
        ({"train": {"batch_size": 1}}, "train.batch_size"),
        ({"teacher": {"max_seq_length": 4}}, "teacher.max_seq_length"),
        ({"teacher": {"modle": "x"}}, "teacher.modle: unknown key"),
        ({"data": {"sources": []}}, "data.sources"),
        ({"data": {"sources": [{"file": "a.txt", "dataset": "b"}]}}, "data.sources.0"),
        ({"data": {"sources": [{"dataset": "x", "tset_size": 3}]}}, "data.sources.0.tset_size"),
        ({"evaluate": {"k": 0}}, "evaluate.k"),
        ({"student": {"kind": "pqrnn", "hiden": 3}}, "hiden"),
        ({"student": {"kind": "nope"}}, "student"),
    ],
)
def test_errors_name_the_field(data, field):
    with pytest.raises(RecipeError) as err:
        parse_embed_recipe(data, "embed.yaml")
    assert field in str(err.value)
    assert str(err.value).startswith("embed.yaml: ")


def test_defaults_and_hash():
    recipe = parse_embed_recipe(None)
    assert recipe.teacher.model == "minilm-l6"
    assert recipe.data.sources[0].dataset == "rotten_tomatoes"
    other = parse_embed_recipe({"train": {"epochs": 5}})
    assert recipe.training_hash() != other.training_hash()
    # evaluation settings do not retrain the student
    assert recipe.training_hash() == parse_embed_recipe({"evaluate": {"k": 5}}).training_hash()


def test_file_errors(tmp_path):
    with pytest.raises(RecipeError, match="no such recipe file"):
        load_embed_recipe(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("train: [1, 2\n", encoding="utf-8")
    with pytest.raises(RecipeError, match="not valid YAML"):
        load_embed_recipe(bad)
    (tmp_path / "list.yaml").write_text("- 1\n", encoding="utf-8")
    with pytest.raises(RecipeError, match="a mapping of sections"):
        load_embed_recipe(tmp_path / "list.yaml")


def test_shipped_recipes_parse():
    from pathlib import Path

    root = Path(__file__).resolve().parents[2] / "recipes"
    paths = sorted(root.glob("embed_*.yaml"))
    assert paths
    for path in paths:
        assert isinstance(load_embed_recipe(path), EmbedRecipe)
