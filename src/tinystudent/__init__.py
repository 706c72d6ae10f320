"""tinystudent: distill large teachers into tiny, fast students from a few labeled examples.

The pipeline is data -> teacher -> soft labels (cache) -> student -> evaluate; see
`tinystudent.pipeline.run` for the composition and `tinystudent.cli` for the commands.

The Python API is importable from here: `distill` does the whole job in one call; `Recipe`,
`load_recipe`, `run`, `load_student`, `Predictor` and the dataset loaders are the pieces;
`write_report_html` (re)builds a run's report page.
Each is imported on first use, so `import tinystudent` stays light (no torch).
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

if TYPE_CHECKING:
    from tinystudent.api import DistillResult, distill
    from tinystudent.check import check_file
    from tinystudent.data import (
        DataProblemsError,
        Split,
        TextDataset,
        load_dataset,
        load_file,
        make_split,
    )
    from tinystudent.errors import DataError, RecipeError, TinyStudentError
    from tinystudent.evaluate.run_page import write_report_html
    from tinystudent.inference import Predictor
    from tinystudent.pipeline import run
    from tinystudent.recipe import Recipe, load_recipe, parse_recipe
    from tinystudent.students import Student, load_student

#: public name -> the module that defines it
_LAZY = {
    "distill": "tinystudent.api",
    "DistillResult": "tinystudent.api",
    "check_file": "tinystudent.check",
    "DataProblemsError": "tinystudent.data",
    "Split": "tinystudent.data",
    "TextDataset": "tinystudent.data",
    "load_dataset": "tinystudent.data",
    "load_file": "tinystudent.data",
    "make_split": "tinystudent.data",
    "write_report_html": "tinystudent.evaluate.run_page",
    "DataError": "tinystudent.errors",
    "RecipeError": "tinystudent.errors",
    "TinyStudentError": "tinystudent.errors",
    "Predictor": "tinystudent.inference",
    "run": "tinystudent.pipeline",
    "Recipe": "tinystudent.recipe",
    "load_recipe": "tinystudent.recipe",
    "parse_recipe": "tinystudent.recipe",
    "Student": "tinystudent.students",
    "load_student": "tinystudent.students",
}

__all__ = [
    "__version__",
    "distill",
    "DistillResult",
    "check_file",
    "DataProblemsError",
    "Split",
    "TextDataset",
    "load_dataset",
    "load_file",
    "make_split",
    "write_report_html",
    "DataError",
    "RecipeError",
    "TinyStudentError",
    "Predictor",
    "run",
    "Recipe",
    "load_recipe",
    "parse_recipe",
    "Student",
    "load_student",
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(import_module(_LAZY[name]), name)
        globals()[name] = value  # later lookups skip this hook
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
