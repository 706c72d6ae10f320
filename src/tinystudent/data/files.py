"""CSV, JSONL and parquet loaders with errors that name the file, the row and the column.

Rows with an empty label are kept as unlabeled in-domain text (the pool); rows with an empty
text are an error, because silently dropping data hides bugs in the user's export. A text
repeated with the same label is kept once; repeated with another label it is an error (which
label is right cannot be guessed) unless `on_conflict` says what to do. Unlabeled rows
repeating a labeled text are dropped, so a test text can never come back through the pool.

Problems with single rows (bad rows, empty texts, unknown labels, conflicting labels) are
collected over the whole file and raised as one error (see `tinystudent.data.problems`);
problems with the whole file (missing, empty, not UTF-8, no such column) stop at once.
"""

from __future__ import annotations

import csv
import json
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tinystudent.data.dataset import TextDataset, dedupe
from tinystudent.data.problems import OnConflict, Problems, resolve_conflicts
from tinystudent.errors import DataError

FORMATS = {".csv": "csv", ".tsv": "tsv", ".jsonl": "jsonl", ".json": "jsonl", ".parquet": "parquet"}

Rows = Iterator[tuple[int, dict[str, Any]]]


def _rows_csv(path: Path, delimiter: str, problems: Problems) -> Rows:
    # Long documents are valid input (the models truncate them); csv's default cap is 128 KiB.
    old_limit = csv.field_size_limit(min(sys.maxsize, 2**31 - 1))
    try:
        yield from _read_csv(path, delimiter, problems)
    finally:
        csv.field_size_limit(old_limit)


def _read_csv(path: Path, delimiter: str, problems: Problems) -> Rows:
    # utf-8-sig: a byte-order mark (Excel writes one) is not part of the first column's name.
    with path.open("r", encoding="utf-8-sig", newline="") as f:
        reader = csv.DictReader(f, delimiter=delimiter, strict=True)
        while True:
            start = reader.line_num + 1
            try:
                if reader.line_num == 0:
                    _ = reader.fieldnames  # the header: a row starts after it
                    start = reader.line_num + 1
                row = next(reader)
            except StopIteration:
                return
            except csv.Error as e:
                unclosed = "end of data" in str(e)
                hint = " (a quote is never closed)" if unclosed else ""
                problems.add("bad_row", f"malformed CSV in the row starting at line {start}{hint}")
                if unclosed:  # the rest of the file is inside the open quote
                    return
                continue
            if None in row:  # more cells than header columns
                problems.add("bad_row", f"row {reader.line_num} has more cells than the header")
                continue
            missing = [k for k, v in row.items() if v is None]
            if missing:
                problems.add(
                    "bad_row",
                    f"row {reader.line_num} has fewer cells than the header "
                    f"(no {missing[0]!r}); write an empty cell as a trailing delimiter",
                )
                continue
            yield reader.line_num, row


def _rows_jsonl(path: Path, problems: Problems) -> Rows:
    with path.open("r", encoding="utf-8-sig") as f:
        for line_no, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as e:
                problems.add("bad_row", f"line {line_no} is not valid JSON ({e.msg})")
                continue
            if not isinstance(row, dict):
                problems.add("bad_row", f"line {line_no} is not a JSON object")
                continue
            yield line_no, row


def _rows_parquet(path: Path) -> Rows:
    try:
        import pyarrow.parquet as pq
    except ImportError:
        raise DataError(
            "reading parquet needs pyarrow: pip install 'tinystudent[parquet]'"
        ) from None
    try:
        table = pq.read_table(path)
    except Exception as e:  # pyarrow raises several types for a damaged file
        raise DataError(f"{path}: not a readable parquet file ({e})") from None
    yield from enumerate(table.to_pylist(), start=1)


def _utf8_error(path: Path) -> str:
    """Where the first invalid UTF-8 byte is, by line: decoders report chunk offsets only."""
    with path.open("rb") as f:
        for line_no, line in enumerate(f, start=1):
            try:
                line.decode("utf-8")
            except UnicodeDecodeError as e:
                bad = line[e.start : e.end]
                return f"line {line_no} is not valid UTF-8 (byte {e.start + 1}: {bad!r})"
    return "not valid UTF-8"


def _open_rows(path: Path, problems: Problems) -> Rows:
    """The rows of a file of any supported format; whole-file problems raise here."""
    if not path.exists():
        raise DataError(f"{path}: no such file")
    if path.is_dir():
        raise DataError(f"{path}: is a directory, expected a .csv, .tsv, .jsonl or .parquet file")
    fmt = FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise DataError(f"{path}: unknown format {path.suffix!r}; use one of {sorted(FORMATS)}")
    if path.stat().st_size == 0:
        raise DataError(f"{path}: the file is empty")
    if fmt in ("csv", "tsv"):
        return _rows_csv(path, "," if fmt == "csv" else "\t", problems)
    return _rows_jsonl(path, problems) if fmt == "jsonl" else _rows_parquet(path)


@dataclass
class _Collected:
    """The usable rows of a file: labeled texts with their raw labels and file rows."""

    texts: list[str] = field(default_factory=list)
    labels: list[str] = field(default_factory=list)
    lines: list[int] = field(default_factory=list)  # the file row of each labeled text
    unlabeled: list[str] = field(default_factory=list)


def _missing_column(path: Path, line: int, row: dict[str, Any], column: str, option: str) -> str:
    return (
        f"{path}: row {line} has no column {column!r} (columns: {sorted(row)}); "
        f"set the {option.split('_')[0]} column option (data.{option})"
    )


#: A raw label cell to its label key: "" for no label (the row joins the pool), None when the
#: cell is bad (the parser has recorded the problem).
LabelParser = Callable[[Any, int, str, Problems], "str | None"]


def single_label(value: Any, line: int, column: str, problems: Problems) -> str | None:
    """One label per row: a scalar cell, read as text."""
    if isinstance(value, (dict, list)):
        problems.add("bad_row", f"row {line} column {column!r} is not a label")
        return None
    return "" if value is None else str(value).strip()


def _collect(
    path: Path,
    rows: Rows,
    text_column: str,
    label_column: str,
    problems: Problems,
    parse: LabelParser = single_label,
) -> _Collected:
    """Every row checked; a column missing from the first row is the user's option, not data."""
    out = _Collected()
    first = True
    for line, row in rows:
        for column, option in ((text_column, "text_column"), (label_column, "label_column")):
            if column not in row and first:
                raise DataError(_missing_column(path, line, row, column, option))
        first = False
        if text_column not in row or label_column not in row:
            gone = text_column if text_column not in row else label_column
            problems.add("bad_row", f"row {line} has no column {gone!r}")
            continue
        text, label = row[text_column], row[label_column]
        if text is not None and not isinstance(text, str):
            problems.add(
                "bad_row",
                f"row {line} column {text_column!r} is not a string "
                f"(got {type(text).__name__} {str(text)[:40]!r})",
            )
            continue
        if not text or not text.strip():
            problems.add("empty_text", f"row {line} has an empty text in column {text_column!r}")
            continue
        label = parse(label, line, label_column, problems)
        if label is None:
            continue
        if label:
            out.texts.append(text.strip())
            out.labels.append(label)
            out.lines.append(line)
        else:
            out.unlabeled.append(text.strip())
    return out


def load_file(
    path: str | Path,
    text_column: str = "text",
    label_column: str = "label",
    label_names: list[str] | None = None,
    on_conflict: OnConflict = "error",
) -> TextDataset:
    """Load a labeled text file; `label_names` fixes the schema (and rejects other labels).

    Every row problem in the file is reported in one `DataProblemsError`; `on_conflict`
    (`error`, `drop`, `majority`) decides what a text repeated with two labels does, and what
    it did is kept in the dataset's `cleaning` record.
    """
    path = Path(path).expanduser()
    problems = Problems(str(path))
    try:
        got = _collect(path, _open_rows(path, problems), text_column, label_column, problems)
    except UnicodeDecodeError:
        raise DataError(f"{path}: {_utf8_error(path)}; re-encode the file as UTF-8") from None

    if label_names is not None:
        known = set(label_names)
        for label, line in zip(got.labels, got.lines):
            if label not in known:
                problems.add(
                    "unknown_label",
                    f"row {line} has label {label!r}, which is not in the schema "
                    f"{list(label_names)}",
                )
        keep = [i for i, label in enumerate(got.labels) if label in known]
        got = _Collected(
            [got.texts[i] for i in keep],
            [got.labels[i] for i in keep],
            [got.lines[i] for i in keep],
            got.unlabeled,
        )
    keep, cleaning = resolve_conflicts(got.texts, got.labels, got.lines, on_conflict, problems)
    problems.raise_if_any()
    if not got.texts:
        raise DataError(f"{path}: no labeled rows (column {label_column!r} is empty everywhere)")
    texts = [got.texts[i] for i in keep]
    raw = [got.labels[i] for i in keep]
    if not texts:
        raise DataError(f"{path}: no labeled rows left after data.on_conflict: {on_conflict}")
    names = sorted(set(raw)) if label_names is None else list(label_names)
    index = {name: i for i, name in enumerate(names)}
    t, y = dedupe(texts, [index[label] for label in raw])
    cleaning["duplicate_rows_dropped"] = len(texts) - len(t)
    labeled = set(t)
    pool = [u for u in dict.fromkeys(got.unlabeled) if u not in labeled]
    return TextDataset(str(path), t, y, names, pool, cleaning=cleaning)
