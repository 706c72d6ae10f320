"""The Python API's one call: distill a labeled file into a student, from a notebook.

`distill` builds the same recipe `tinystudent run --data FILE ...` would (keywords are the
CLI's flags), runs the same pipeline into a run directory, and hands back the report and the
trained student, ready to `predict`. Every run keeps its resolved `recipe.yaml`, so a notebook
result can be repeated from the command line.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np

    from tinystudent.recipe import Recipe
    from tinystudent.students import Student


@dataclass
class DistillResult:
    """What a run produced: the report (as in report.json), the student and where it lies."""

    report: dict[str, Any]
    student: Student
    recipe: Recipe
    out: Path

    @property
    def label_names(self) -> list[str]:
        return list(self.student.label_names)

    def predict_proba(self, texts: str | Sequence[str]) -> np.ndarray:
        """Class probabilities [n_texts, n_labels], columns in `label_names` order."""
        return self.student.predict_proba(_as_list(texts))

    def predict(self, texts: str | Sequence[str]) -> list[str]:
        """The most likely label of each text (single-label runs; see `predict_labels`)."""
        if self.student.multi_label:
            raise ValueError("a multi-label student predicts label sets: use predict_labels")
        probs = self.predict_proba(texts)
        return [self.label_names[int(i)] for i in probs.argmax(axis=1)]

    def predict_labels(self, texts: str | Sequence[str]) -> list[list[str]]:
        """Each text's label set: labels over their thresholds (multi-label runs), else the
        one most likely label."""
        return self.student.predict_labels(_as_list(texts))


def _as_list(texts: str | Sequence[str]) -> list[str]:
    return [texts] if isinstance(texts, str) else list(texts)


def _base(recipe: Recipe | str | Path | Mapping[str, Any] | None) -> tuple[Any, str]:
    """The recipe to start from as plain data, and its name for error messages."""
    from tinystudent.check import resolved
    from tinystudent.recipe import Recipe, read_yaml

    if recipe is None:
        return None, "distill()"
    if isinstance(recipe, Recipe):
        return resolved(recipe), "recipe="
    if isinstance(recipe, Mapping):
        return dict(recipe), "recipe="
    return read_yaml(recipe), str(recipe)


def distill(
    data: str | Path,
    *,
    teacher: str | Mapping[str, Any] | None = None,
    student: str | Mapping[str, Any] | None = None,
    k: int | None = None,
    out: str | Path | None = None,
    text_column: str | None = None,
    label_column: str | None = None,
    recipe: Recipe | str | Path | Mapping[str, Any] | None = None,
    **options: Any,
) -> DistillResult:
    """Distill a teacher into a student on a labeled file (or a built-in dataset name).

    `teacher` is a model name (`minilm-l6`, a folder, a hub id) or a whole teacher section;
    `student` a kind (`pqrnn`, `bag`, `cnn`, `bilstm`, `transformer`) or a whole student
    section. `recipe` (a Recipe, a YAML path or a dict) is the starting point; the keywords,
    and `options` named like the CLI's flags (`epochs`, `seed`, `test_size`, `on_conflict`,
    `max_pool`, `nproc`, ...), override it. `out` defaults to runs/<name>. Bad values raise
    `RecipeError`, bad data `DataError` (every problem of the file at once), as the CLI
    reports them.
    """
    from tinystudent.overrides import apply_overrides
    from tinystudent.pipeline import run
    from tinystudent.students import load_student

    base, source = _base(recipe)
    sections: dict[str, Any] = {}
    if isinstance(teacher, Mapping):
        sections["teacher"], teacher = dict(teacher), None
    if isinstance(student, Mapping):
        sections["student"], student = dict(student), None
    if sections:
        base = {**(base or {}), **sections}
    values = dict(options, data=str(data), teacher=teacher, student=student, k=k)
    values.update(text_column=text_column, label_column=label_column)
    if base is not None and recipe is None and "name" not in values:
        values["name"] = Path(str(data)).stem or "run"
    chosen = apply_overrides(base, values, source, flag=lambda name: name, sep="=")
    out_dir = Path(out) if out is not None else Path("runs") / chosen.name
    report = run(chosen, out_dir)
    return DistillResult(report, load_student(out_dir / "student"), chosen, out_dir)
