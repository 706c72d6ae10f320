"""Bad input, end to end through `tinystudent run`: exit code 2, one error line naming the
file and the row or field, and nothing half-written left behind.

The loaders' unit tests (tests/data/test_files.py) check the messages in detail; this table
checks what a user sees from the command line.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from tests.conftest import toy_rows
from tinystudent.cli import main

HEADER = "text,label\n"
ROWS = "".join(f"{t},{y}\n" for t, y in toy_rows(60))  # file lines 2..61
NEXT = 62  # the file line of a row appended after ROWS


def recipe_for(data: Path, teacher: Path, **data_opts: object) -> dict:
    return {
        "name": "bad",
        "data": {"dataset": str(data), "k": 4, "test_size": 10, **data_opts},
        "teacher": {"model": str(teacher), "epochs": 1},
        "student": {"kind": "pqrnn", "hidden": 8, "bottleneck": 16, "features": 32},
        "train": {"epochs": 1},
    }


def cli_run(recipe: Path, out: Path, capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    rc = main(["run", str(recipe), "--out", str(out)])
    return rc, capsys.readouterr().err


def write_recipe(path: Path, recipe: dict | str) -> Path:
    path.write_text(recipe if isinstance(recipe, str) else yaml.safe_dump(recipe))
    return path


# id -> (data file name, content, extra data options, raw recipe edit, fragments of the error)
Case = tuple[str, "str | bytes | None", dict, "Callable[[dict], dict | str] | None", list[str]]
CASES: dict[str, Case] = {
    "missing file": ("nope.csv", None, {}, None, ["no such file"]),
    "empty file": ("empty.csv", "", {}, None, ["the file is empty"]),
    "csv: extra cell": ("x.csv", HEADER + ROWS + "a,pos,zzz\n", {}, None, [f"row {NEXT}", "more"]),
    "csv: missing cell": ("m.csv", HEADER + ROWS + "lonely\n", {}, None, [f"row {NEXT}", "fewer"]),
    "csv: open quote": (
        "q.csv",
        HEADER + ROWS + '"never closed,pos\nb,neg\n',
        {},
        None,
        [f"line {NEXT}", "quote is never closed"],
    ),
    "jsonl: bad row": (
        "b.jsonl",
        '{"text": "fine", "label": "pos"}\n{"text": "broken", "label": \n',
        {},
        None,
        ["line 2", "not valid JSON"],
    ),
    "jsonl: text not a string": (
        "n.jsonl",
        '{"text": "fine", "label": "pos"}\n{"text": 42, "label": "neg"}\n',
        {},
        None,
        ["row 2", "'text'", "not a string"],
    ),
    "non-UTF-8 bytes": (
        "latin.csv",
        (HEADER + ROWS).encode() + "caf\xe9 film,pos\n".encode("latin-1"),
        {},
        None,
        [f"line {NEXT}", "not valid UTF-8", "b'\\xe9'"],
    ),
    "empty text": ("e.csv", HEADER + ROWS + ",pos\n", {}, None, [f"row {NEXT}", "empty text"]),
    "whitespace text": (
        "w.csv",
        HEADER + ROWS + '"  \t ",pos\n',
        {},
        None,
        [f"row {NEXT}", "empty text", "'text'"],
    ),
    "label outside the schema": (
        "s.csv",
        HEADER + ROWS + "so-so film,neutral\n",
        {"label_names": ["neg", "pos"]},
        None,
        [f"row {NEXT}", "'neutral'", "not in the schema"],
    ),
    "missing column": ("c.csv", "body,label\na,pos\n", {}, None, ["no column 'text'"]),
    "custom column missing": (
        "c2.csv",
        HEADER + ROWS,
        {"label_column": "stars"},
        None,
        ["row 2", "no column 'stars'"],
    ),
    "one class only": (
        "one.csv",
        HEADER + "".join(f"{t},pos\n" for t, _ in toy_rows(30)),
        {},
        None,
        ["only one class", "'pos'"],
    ),
    "k larger than a class": (
        "k.csv",
        HEADER + ROWS,
        {"k": 40},
        None,
        ["'neg'", "fewer than k=40"],
    ),
    "duplicate text, two labels": (
        "d.csv",
        HEADER + ROWS + "same words here,pos\nsame words here,neg\n",
        {},
        None,
        [f"row {NEXT + 1}", f"row {NEXT}", "another label"],
    ),
    "recipe: wrong type": (
        "ok.csv",
        HEADER + ROWS,
        {},
        lambda r: {**r, "teacher": {**r["teacher"], "epochs": "many"}},
        ["recipe.yaml", "teacher.epochs", "integer"],
    ),
    "recipe: unknown key": (
        "ok.csv",
        HEADER + ROWS,
        {},
        lambda r: {**r, "data": {**r["data"], "kk": 3}},
        ["recipe.yaml", "data.kk", "unknown key"],
    ),
    "recipe: not a mapping": ("ok.csv", HEADER + ROWS, {}, lambda r: "- a\n- b\n", ["mapping"]),
}


# pyyaml's message spans several lines; recipe.load_recipe folds it into one (with the line).
CASES["recipe: invalid YAML"] = ("ok.csv", HEADER + ROWS, {}, lambda r: "data: {k: 3\n", ["line"])
PARAMS = list(CASES)


@pytest.mark.parametrize("case", PARAMS)
def test_bad_input_gives_one_clear_error(
    case: str, tmp_path: Path, tiny_teacher_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    name, content, opts, edit, fragments = CASES[case]
    data = tmp_path / name
    if isinstance(content, str):
        data.write_text(content, encoding="utf-8")
    elif isinstance(content, bytes):
        data.write_bytes(content)
    recipe: dict | str = recipe_for(data, tiny_teacher_dir, **opts)
    if edit is not None:
        recipe = edit(recipe)  # type: ignore[arg-type]
    recipe_path = write_recipe(tmp_path / "recipe.yaml", recipe)
    out = tmp_path / "out"

    rc, err = cli_run(recipe_path, out, capsys)

    lines = [line for line in err.splitlines() if line.strip()]
    assert rc == 2, err
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    named = str(recipe_path) if case.startswith("recipe") else str(data)
    assert named in lines[0]
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])
    leftovers = [p for p in out.rglob("*") if p.suffix == ".tmp" or p.name.startswith("report")]
    assert not leftovers
    assert not (out / "teacher").exists() and not (out / "student").exists()


def test_awkward_but_valid_input_runs(
    tmp_path: Path, tiny_teacher_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A 300k-character text (over csv's 128 KiB field cap), a byte-order mark, repeated rows
    and an unlabeled copy of a labeled text: accepted, deduplicated, the long text truncated."""
    long_text = " ".join(["great film"] * 30_000)
    repeated = toy_rows(60)[:5]
    body = HEADER + ROWS + "".join(f"{t},{y}\n" for t, y in repeated)
    body += f'"{long_text}",pos\n' + f"{repeated[0][0]},\n"
    data = tmp_path / "awkward.csv"
    data.write_bytes(b"\xef\xbb\xbf" + body.encode())
    recipe = write_recipe(tmp_path / "recipe.yaml", recipe_for(data, tiny_teacher_dir))

    rc, err = cli_run(recipe, tmp_path / "out", capsys)

    assert rc == 0, err
    split = json.loads((tmp_path / "out" / "data" / "split.json").read_text())
    everything = split["train_texts"] + split["test_texts"] + split["pool"]
    assert len(everything) == len(set(everything)) == 61  # 60 rows + the long text, once each
    assert long_text in everything
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    assert report["transfer_size"] + report["test_size"] == 61
