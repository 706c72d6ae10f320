"""Recipe values given on the command line or as keyword arguments, validated like YAML.

An override is written into the recipe's data before validation, so a bad value (`--nproc -1`,
`k=0`) gets the recipe's own one-line error, named by the flag the user typed.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from tinystudent.errors import RecipeError
from tinystudent.recipe import Recipe, _without_union_tags

#: override name (a keyword; `--text-column` on the command line) -> dotted recipe field
FIELDS: dict[str, str] = {
    "name": "name",
    "data": "data.dataset",
    "text_column": "data.text_column",
    "label_column": "data.label_column",
    "label_names": "data.label_names",
    "on_conflict": "data.on_conflict",
    "multi_label": "data.multi_label",
    "label_separator": "data.label_separator",
    "k": "data.k",
    "seed": "data.seed",
    "test_size": "data.test_size",
    "max_pool": "data.max_pool",
    "teacher": "teacher.model",
    "teacher_epochs": "teacher.epochs",
    "student": "student.kind",
    "epochs": "train.epochs",
    "cache_dir": "label.cache_dir",
    "nproc": "scale.nproc",
    "ray_address": "scale.ray_address",
    "label_backend": "scale.label_backend",
    "threads": "threads",
    "device": "device",
}


def cli_flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def apply_overrides(
    data: Any,
    values: dict[str, Any],
    source: str = "recipe",
    flag: Callable[[str], str] = cli_flag,
    sep: str = " ",
) -> Recipe:
    """Validate `data` (parsed YAML, or None for no recipe) with `values` written in; None
    values are not given. Without a recipe the run is named after the data file."""
    given = {k: v for k, v in values.items() if v is not None}
    unknown = sorted(set(given) - set(FIELDS))
    if unknown:
        raise RecipeError(f"unknown option {flag(unknown[0])} (choose from {sorted(FIELDS)})")
    base = copy.deepcopy(data) if data is not None else {}
    if not isinstance(base, dict):
        raise RecipeError(f"{source}: a recipe is a mapping of sections, got {type(base).__name__}")
    if data is None and "data" in given and "name" not in given:
        given["name"] = Path(str(given["data"])).stem or "run"
    if "teacher" in given and base.get("teachers") is not None:
        raise RecipeError(f"{flag('teacher')}: {source} has several teachers (teachers:)")
    student = base.get("student")
    if "student" in given and isinstance(student, dict) and student.get("kind") != given["student"]:
        base["student"] = {}  # another kind's options would not fit the new kind
    for name, value in given.items():
        _set(base, FIELDS[name], value, source, flag(name))
    try:
        return Recipe(**base)
    except ValidationError as e:
        raise RecipeError(_describe(e, given, source, flag, sep)) from None


def _set(data: dict[str, Any], dotted: str, value: Any, source: str, flag: str) -> None:
    *parents, leaf = dotted.split(".")
    node = data
    for p in parents:
        if node.get(p) is None:
            node[p] = {}
        if not isinstance(node[p], dict):
            raise RecipeError(f"{flag}: {source}: {p} is not a section")
        node = node[p]
    node[leaf] = value


def _describe(
    err: ValidationError,
    given: dict[str, Any],
    source: str,
    flag: Callable[[str], str],
    sep: str,
) -> str:
    """One line per problem; a problem with an override names the flag and the value."""
    by_path = {FIELDS[name]: name for name in given}
    lines = []
    for e in err.errors():
        loc = ".".join(str(p) for p in _without_union_tags(list(e["loc"]))) or "(top level)"
        msg = "unknown key" if e["type"] == "extra_forbidden" else e["msg"]
        name = by_path.get(loc) or by_path.get(f"{loc}.kind")  # student: kind + options
        if name is not None:
            lines.append(f"{flag(name)}{sep}{given[name]!r} ({loc}): {msg}")
        else:
            lines.append(f"{source}: {loc}: {msg}")
    return "\n".join(lines)
