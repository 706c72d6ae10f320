"""CSV, JSONL and parquet loaders with errors that name the file, the row and the column.

Rows with an empty label are kept as unlabeled in-domain text (the pool); rows with an empty
text are an error, because silently dropping data hides bugs in the user's export. A text
repeated with the same label is kept once; repeated with another label it is an error (which
label is right cannot be guessed). Unlabeled rows repeating a labeled text are dropped, so a
test text can never come back through the pool.
"""

from __future__ import annotations

import csv
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from tinystudent.data.dataset import TextDataset, dedupe
from tinystudent.errors import DataError

FORMATS = {".csv": "csv", ".tsv": "tsv", ".jsonl": "jsonl", ".json": "jsonl", ".parquet": "parquet"}


def _rows_csv(path: Path, delimiter: str) -> Iterator[tuple[int, dict[str, Any]]]:
    # Long documents are valid input (the models truncate them); csv's default cap is 128 KiB.
    old_limit = csv.field_size_limit(min(sys.maxsize, 2**31 - 1))
    try:
        yield from _read_csv(path, delimiter)
    finally:
        csv.field_size_limit(old_limit)


def _read_csv(path: Path, delimiter: str) -> Iterator[tuple[int, dict[str, Any]]]:
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
                hint = " (a quote is never closed)" if "end of data" in str(e) else ""
                raise DataError(
                    f"{path}: malformed CSV in the row starting at line {start}{hint}: {e}"
                ) from None
            if None in row:  # more cells than header columns
                raise DataError(f"{path}: row {reader.line_num} has more cells than the header")
            missing = [k for k, v in row.items() if v is None]
            if missing:
                raise DataError(
                    f"{path}: row {reader.line_num} has fewer cells than the header "
                    f"(no {missing[0]!r}); write an empty cell as a trailing delimiter"
                )
            yield reader.line_num, row


def _rows_jsonl(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    with path.open("r", encoding="utf-8-sig") as f:
        for line_no, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as e:
                raise DataError(f"{path}: line {line_no} is not valid JSON ({e.msg})") from None
            if not isinstance(row, dict):
                raise DataError(f"{path}: line {line_no} is not a JSON object")
            yield line_no, row


def _rows_parquet(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
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


def load_file(
    path: str | Path,
    text_column: str = "text",
    label_column: str = "label",
    label_names: list[str] | None = None,
) -> TextDataset:
    """Load a labeled text file; `label_names` fixes the schema (and rejects other labels)."""
    path = Path(path).expanduser()
    if not path.exists():
        raise DataError(f"{path}: no such file")
    if path.is_dir():
        raise DataError(f"{path}: is a directory, expected a .csv, .tsv, .jsonl or .parquet file")
    fmt = FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise DataError(f"{path}: unknown format {path.suffix!r}; use one of {sorted(FORMATS)}")
    if path.stat().st_size == 0:
        raise DataError(f"{path}: the file is empty")
    rows = {
        "csv": lambda: _rows_csv(path, ","),
        "tsv": lambda: _rows_csv(path, "\t"),
        "jsonl": lambda: _rows_jsonl(path),
        "parquet": lambda: _rows_parquet(path),
    }[fmt]()

    texts: list[str] = []
    raw_labels: list[str] = []
    lines: list[int] = []  # the file row of each labeled text, for error messages
    unlabeled: list[str] = []
    try:
        for line, row in rows:
            if text_column not in row:
                raise DataError(
                    f"{path}: row {line} has no column {text_column!r} "
                    f"(columns: {sorted(row)}); set the text column option (data.text_column)"
                )
            if label_column not in row:
                raise DataError(
                    f"{path}: row {line} has no column {label_column!r} "
                    f"(columns: {sorted(row)}); set the label column option (data.label_column)"
                )
            text = row[text_column]
            if text is not None and not isinstance(text, str):
                raise DataError(
                    f"{path}: row {line} column {text_column!r} is not a string "
                    f"(got {type(text).__name__} {str(text)[:40]!r})"
                )
            if not text or not text.strip():
                raise DataError(f"{path}: row {line} has an empty text in column {text_column!r}")
            label = row[label_column]
            if isinstance(label, (dict, list)):
                raise DataError(f"{path}: row {line} column {label_column!r} is not a label")
            label = "" if label is None else str(label).strip()
            if label:
                texts.append(text.strip())
                raw_labels.append(label)
                lines.append(line)
            else:
                unlabeled.append(text.strip())
    except UnicodeDecodeError:
        raise DataError(f"{path}: {_utf8_error(path)}; re-encode the file as UTF-8") from None

    if not texts:
        raise DataError(f"{path}: no labeled rows (column {label_column!r} is empty everywhere)")
    if label_names is None:
        label_names = sorted(set(raw_labels))
    else:
        known = set(label_names)
        for label, line in zip(raw_labels, lines):
            if label not in known:
                raise DataError(
                    f"{path}: row {line} has label {label!r}, which is not in the schema "
                    f"{list(label_names)}"
                )
    _check_conflicting_duplicates(path, texts, raw_labels, lines)
    index = {name: i for i, name in enumerate(label_names)}
    t, y = dedupe(texts, [index[lab] for lab in raw_labels])
    labeled = set(t)
    pool = [u for u in dict.fromkeys(unlabeled) if u not in labeled]
    return TextDataset(str(path), t, y, list(label_names), pool)


def _check_conflicting_duplicates(
    path: Path, texts: list[str], labels: list[str], lines: list[int]
) -> None:
    first: dict[str, tuple[str, int]] = {}
    for text, label, line in zip(texts, labels, lines):
        seen = first.setdefault(text, (label, line))
        if seen[0] != label:
            raise DataError(
                f"{path}: row {line} repeats the text of row {seen[1]} with another label "
                f"({label!r} vs {seen[0]!r}); keep one of them"
            )
