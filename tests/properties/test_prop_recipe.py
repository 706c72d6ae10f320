"""Property: any YAML mapping (or any text in a recipe file) gives a Recipe or one RecipeError.

Keys are drawn mostly from the real section and field names, so the search reaches deep
into the sections instead of stopping at the first unknown key. A recipe that parses can be
hashed into stage keys and survives a dump-and-parse round trip.
"""

from __future__ import annotations

import tempfile
import typing
from pathlib import Path

import yaml
from hypothesis import event, example, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel

from tinystudent.errors import RecipeError
from tinystudent.recipe import Recipe, load_recipe, parse_recipe


def field_names(model: type[BaseModel], seen: set[type] | None = None) -> set[str]:
    """Every field name of `model` and of the models its fields hold, recursively."""
    seen = seen if seen is not None else set()
    if model in seen:
        return set()
    seen.add(model)
    names = set(model.model_fields)
    for f in model.model_fields.values():
        stack = [f.annotation]
        while stack:
            t = stack.pop()
            if isinstance(t, type) and issubclass(t, BaseModel):
                names |= field_names(t, seen)
            stack.extend(typing.get_args(t))
    return names


KEYS = sorted(field_names(Recipe) | {"kind", "config", "finetune", "frozen", "llm"})
SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**40), 2**40),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=12),
    st.sampled_from(["pqrnn", "bag", "cnn", "bilstm", "transformer", "minilm-l6", "auto", "ray"]),
)
KEY = st.sampled_from(KEYS) | st.text(max_size=6)
VALUES = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(KEY, inner, max_size=4),
    max_leaves=12,
)
SECTIONS = st.dictionaries(
    st.sampled_from(sorted(Recipe.model_fields)) | st.text(max_size=6), VALUES, max_size=5
)


def models_in(annotation: object) -> list[type[BaseModel]]:
    """The pydantic models an annotation names (through unions, lists and Optional)."""
    out, stack = [], [annotation]
    while stack:
        t = stack.pop()
        if isinstance(t, type) and issubclass(t, BaseModel):
            out.append(t)
        stack.extend(typing.get_args(t))
    return out


def plausible(model: type[BaseModel]) -> st.SearchStrategy[dict]:
    """A few of the model's own fields, each set to its default, a neighbour of it, or junk."""

    def value(name: str) -> st.SearchStrategy[object]:
        info = model.model_fields[name]
        default = None if info.is_required() else info.get_default(call_default_factory=True)
        if not isinstance(default, (str, int, float, bool, list, dict, type(None))):
            default = None
        near: list[object] = [default]
        if isinstance(default, (int, float)) and not isinstance(default, bool):
            near += [default * 2, default + 1, -default, 0]
        return st.sampled_from(near) | SCALARS

    names = sorted(model.model_fields)
    return st.dictionaries(st.sampled_from(names), st.nothing(), max_size=0).flatmap(
        lambda _: st.lists(st.sampled_from(names), max_size=3, unique=True).flatmap(
            lambda keys: st.fixed_dictionaries({k: value(k) for k in keys})
        )
    )


def section(name: str) -> st.SearchStrategy[object]:
    models = models_in(Recipe.model_fields[name].annotation)
    if not models:
        return SCALARS
    one = st.one_of(*(plausible(m) for m in models))
    if name == "teacher":  # the union is told apart by `kind`
        one = st.tuples(one, st.sampled_from(["finetune", "frozen", "llm", None])).map(
            lambda p: {**p[0], "kind": p[1]} if p[1] else p[0]
        )
    if name == "student":
        one = st.tuples(one, st.sampled_from(["pqrnn", "bag", "cnn"])).map(
            lambda p: {**p[0], "kind": p[1]}
        )
    if name == "teachers":
        return st.lists(st.fixed_dictionaries({"config": section("teacher")}), max_size=2)
    return one


PLAUSIBLE = st.lists(st.sampled_from(sorted(Recipe.model_fields)), max_size=4, unique=True).flatmap(
    lambda names: st.fixed_dictionaries({n: section(n) for n in names})
)


def check(parse: typing.Callable[[], Recipe]) -> None:
    try:
        recipe = parse()
    except RecipeError as e:
        assert str(e).strip()
        event("RecipeError")
        return
    event("parsed")
    recipe.section_hash("data", *recipe.teacher_sections, "generate", "student", "train")
    assert parse_recipe(recipe.model_dump(mode="json")) == recipe


@settings(max_examples=200, deadline=None)
@given(SECTIONS | PLAUSIBLE)
@example({"teachers": [{"config": {"kind": "finetune"}}]})  # once failed its round trip
def test_any_mapping(data: dict) -> None:
    check(lambda: parse_recipe(data))


@settings(max_examples=100, deadline=None)
@given(SECTIONS | PLAUSIBLE | st.text(max_size=200))
def test_any_recipe_file(data: dict | str) -> None:
    text = data if isinstance(data, str) else yaml.safe_dump(data, allow_unicode=True)
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "recipe.yaml"
        path.write_text(text, encoding="utf-8")
        check(lambda: load_recipe(path))
