"""The Python API: the README's example runs verbatim, `distill` errors are the recipe's, and
`import tinystudent` stays light."""

from __future__ import annotations

import csv
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

import tinystudent
from tests.conftest import toy_rows
from tinystudent import assets
from tinystudent.errors import DataError, RecipeError

README = Path(__file__).parent.parent / "README.md"


def readme_python_blocks() -> list[str]:
    """The ```python blocks of the README's "Python API" section, in order."""
    text = README.read_text(encoding="utf-8")
    section = text.split("## Python API\n", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```python\n(.*?)```", section, flags=re.S)


@pytest.fixture
def tiny_minilm(tiny_teacher_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Point the catalogue's `minilm-l6` at the tiny random teacher: the example names the real
    model, the test runs it on a 2-layer one (a package dir holding it, as the real one does)."""
    pkg = tmp_path / "site" / "fake_minilm"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "model").symlink_to(tiny_teacher_dir, target_is_directory=True)
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    real = assets.CATALOGUE["minilm-l6"]
    fake = assets.Asset("minilm-l6", "fake_minilm", "x", "model", "model", real.description)
    monkeypatch.setitem(assets.CATALOGUE, "minilm-l6", fake)


@pytest.fixture
def reviews_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    work = tmp_path / "work"
    work.mkdir()
    with (work / "reviews.csv").open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["review", "sentiment"])
        w.writerows(toy_rows(200))
    monkeypatch.chdir(work)
    return work


def test_readme_example_runs_verbatim(
    tiny_minilm: None, reviews_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    blocks = readme_python_blocks()
    assert len(blocks) == 2 and "tinystudent.distill(" in blocks[0]
    scope: dict[str, object] = {}
    exec(compile(blocks[0], "README.md", "exec"), scope)
    result = scope["result"]
    assert isinstance(result, tinystudent.DistillResult)
    assert result.report["k"] == 32 and result.report["student"]["name"] == "bag"
    assert (reviews_dir / "runs/reviews/report.json").is_file()
    assert (reviews_dir / "runs/reviews/recipe.yaml").is_file()
    predicted = result.predict(["a wonderful, moving film", "dull and far too long"])
    assert set(predicted) <= {"neg", "pos"} and len(predicted) == 2
    assert result.predict_proba("one text").shape == (1, 2)
    out = capsys.readouterr().out.splitlines()
    assert out[1] == str(predicted)

    exec(compile(blocks[1], "README.md", "exec"), scope)
    report = scope["report"]
    assert isinstance(report, dict)
    assert set(report["stages"].values()) == {"skipped"}
    assert report["student"]["accuracy"] == result.report["student"]["accuracy"]


def test_distill_errors_name_the_keyword(tmp_path: Path, toy_csv: Path) -> None:
    with pytest.raises(RecipeError, match=r"k=0 \(data.k\): Input should be greater"):
        tinystudent.distill(toy_csv, k=0, out=tmp_path / "x")
    with pytest.raises(RecipeError, match="unknown option epochz"):
        tinystudent.distill(toy_csv, epochz=3, out=tmp_path / "x")
    with pytest.raises(DataError, match="no column 'body'"):
        tinystudent.distill(toy_csv, text_column="body", out=tmp_path / "x")
    assert not (tmp_path / "x" / "teacher").exists()


def test_distill_takes_sections_and_a_recipe(
    tmp_path: Path, toy_csv: Path, tiny_teacher_dir: Path
) -> None:
    base = {"name": "base", "data": {"test_size": 40}, "train": {"epochs": 2}}
    result = tinystudent.distill(
        toy_csv,
        recipe=base,
        k=4,
        teacher={"model": str(tiny_teacher_dir), "epochs": 1},
        student={"kind": "pqrnn", "hidden": 8, "bottleneck": 16, "features": 32},
        max_pool=30,
        out=tmp_path / "run",
    )
    assert result.recipe.name == "base" and result.recipe.train.epochs == 2
    assert result.recipe.student.options["hidden"] == 8
    assert result.report["test_size"] == 40 and result.label_names == ["neg", "pos"]


def test_import_is_light_and_names_resolve() -> None:
    code = "import sys, tinystudent; print('torch' in sys.modules, 'pydantic' in sys.modules)"
    src = str(Path(tinystudent.__file__).parents[1])  # this checkout's code, not an install
    env = {**os.environ, "PYTHONPATH": src}
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env
    )
    assert out.stdout.split() == ["False", "False"]
    for name in tinystudent.__all__:
        assert getattr(tinystudent, name) is not None, name
    with pytest.raises(AttributeError):
        _ = tinystudent.no_such_name  # type: ignore[attr-defined]
