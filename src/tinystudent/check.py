"""`tinystudent check`: validate a recipe of any kind without running it, and resolve it.

The four kinds (pipeline, bench, embed, rationale) are told apart by the sections only they
have, so one command checks any file in recipes/. The resolved form, every default filled in,
is what a run directory keeps as `recipe.yaml`: loading it gives the same recipe, with the
same stage hashes, so `tinystudent run runs/x/recipe.yaml` repeats the run.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel

from tinystudent.errors import RecipeError
from tinystudent.recipe import Recipe, StudentSpec, parse_recipe, read_yaml
from tinystudent.train.config import TrainConfig

RecipeKind = Literal["pipeline", "bench", "embed", "rationale"]
RECIPE_KINDS: tuple[RecipeKind, ...] = ("pipeline", "bench", "embed", "rationale")

_RATIONALE_DATA = {"source", "train_path", "test_path", "num_train", "num_test"}
_EMBED_TOP = {"objective", "shard_size", "evaluate"}
_BENCH_TOP = {
    "ks",
    "seeds",
    "students",
    "baselines",
    "headline",
    "distill_from",
    "gold_students",
    "gold_train",
    "speed",
    "work_threads",
    "budget_minutes",
}


def detect_kind(data: Any) -> tuple[RecipeKind, str]:
    """The recipe kind and why: the first section or key that only that kind has."""
    if not isinstance(data, dict):
        return "pipeline", "no section names another kind"
    keys = set(data)
    section = data.get("data")
    sub: dict[str, Any] = section if isinstance(section, dict) else {}
    if "rationales" in keys:
        return "rationale", "it has a `rationales` section"
    if _RATIONALE_DATA & set(sub):
        return "rationale", f"its data has `{sorted(_RATIONALE_DATA & set(sub))[0]}`"
    if "sources" in sub:
        return "embed", "its data has `sources`"
    if _EMBED_TOP & keys:
        return "embed", f"it has `{sorted(_EMBED_TOP & keys)[0]}`"
    if _BENCH_TOP & keys:
        return "bench", f"it has `{sorted(_BENCH_TOP & keys)[0]}`"
    if isinstance(data.get("teachers"), dict):
        return "bench", "its `teachers` is a mapping of names"
    return "pipeline", "no section names another kind"


def parse_any(data: Any, source: str, kind: RecipeKind) -> BaseModel:
    """Validate parsed YAML as a recipe of `kind` (the loaders each verb uses)."""
    if kind == "pipeline":
        return parse_recipe(data, source)
    if kind == "bench":
        from tinystudent.bench import BenchSpec
        from tinystudent.recipe import validate_sections

        return validate_sections(BenchSpec, data, source)
    if kind == "embed":
        from tinystudent.embeddings.recipe import parse_embed_recipe

        return parse_embed_recipe(data, source)
    from tinystudent.rationale.recipe import parse_rationale_recipe

    return parse_rationale_recipe(data, source)


def check_file(path: str | Path, kind: RecipeKind | None = None) -> tuple[RecipeKind, BaseModel]:
    """Load and validate a recipe file of any kind; a built-in bench protocol name works too."""
    from tinystudent.bench import PROTOCOLS

    if kind in (None, "bench") and str(path) in PROTOCOLS and not Path(path).exists():
        return "bench", PROTOCOLS[str(path)]()
    data = read_yaml(path)
    if kind is None:
        kind, why = detect_kind(data)
    else:
        why = "as asked"
    try:
        return kind, parse_any(data, str(path), kind)
    except RecipeError as e:
        if kind == "pipeline" and why.startswith("no section"):
            raise
        raise RecipeError(f"{e} (checked as {article(kind)} {kind} recipe: {why})") from None


def article(word: str) -> str:
    return "an" if word[:1] in "aeiou" else "a"


def resolved(model: BaseModel) -> dict[str, Any]:
    """A recipe as plain data with every default filled in, and nothing that would not load
    back: an unused `teacher`/`teachers` alternative is left out."""
    data: dict[str, Any] = model.model_dump(mode="json")
    if isinstance(model, Recipe):
        data["student"] = model.student.resolved()
        if model.teachers is None:
            data.pop("teachers")
            data.pop("amalgamation")
            kind = getattr(model.teacher, "kind", "finetune")
            data["teacher"] = {"kind": kind, **data["teacher"]}
        else:
            data.pop("teacher", None)
            data["teachers"] = [_flat_member(m) for m in data["teachers"]]
            if data["amalgamation"] is None:
                data.pop("amalgamation")
    for name in ("train", "gold_train"):  # objectives spelled out, classic keys folded in
        section = getattr(model, name, None)
        if isinstance(section, TrainConfig):
            data[name] = section.resolved()
    students = getattr(model, "students", None)
    if isinstance(students, dict):  # a bench spec's students, each resolved
        data["students"] = {
            n: s.resolved() for n, s in students.items() if isinstance(s, StudentSpec)
        }
    student = getattr(model, "student", None)
    if not isinstance(model, Recipe) and isinstance(student, StudentSpec):
        data["student"] = student.resolved()
    return data


def _flat_member(member: dict[str, Any]) -> dict[str, Any]:
    """A teachers entry as recipes write it: the teacher's keys plus `name` and `labels`."""
    config = dict(member["config"])
    config.setdefault("kind", "finetune")
    extra = {k: member[k] for k in ("name", "labels") if member.get(k) is not None}
    return {**extra, **config}


def resolved_yaml(model: BaseModel, header: str | None = None) -> str:
    """The resolved recipe as YAML (sections in their declared order), with a comment line."""
    text = yaml.safe_dump(resolved(model), sort_keys=False, allow_unicode=True)
    return (f"# {header}\n" if header else "") + text
