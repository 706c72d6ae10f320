"""CSV, JSONL and parquet loaders with errors that name the file, the row and the column.

Rows with an empty label are kept as unlabeled in-domain text (the pool); rows with an empty
text are an error, because silently dropping data hides bugs in the user's export.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from tinystudent.data.dataset import TextDataset, dedupe
from tinystudent.errors import DataError

FORMATS = {".csv": "csv", ".tsv": "tsv", ".jsonl": "jsonl", ".json": "jsonl", ".parquet": "parquet"}


def _rows_csv(path: Path, delimiter: str) -> Iterator[tuple[int, dict[str, Any]]]:
    with path.open("r", encoding="utf-8", newline="") as f:
        reader = csv.DictReader(f, delimiter=delimiter)
        for row in reader:
            if None in row:  # more cells than header columns
                raise DataError(f"{path}: row {reader.line_num} has more cells than the header")
            yield reader.line_num, row


def _rows_jsonl(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    with path.open("r", encoding="utf-8") as f:
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
    unlabeled: list[str] = []
    try:
        for line, row in rows:
            if text_column not in row:
                raise DataError(
                    f"{path}: row {line} has no column {text_column!r} "
                    f"(columns: {sorted(row)}); set the text column option"
                )
            if label_column not in row:
                raise DataError(
                    f"{path}: row {line} has no column {label_column!r} "
                    f"(columns: {sorted(row)}); set the label column option"
                )
            text = row[text_column]
            if not isinstance(text, str) or not text.strip():
                raise DataError(f"{path}: row {line} has an empty text in column {text_column!r}")
            label = row[label_column]
            label = "" if label is None else str(label).strip()
            if label:
                texts.append(text.strip())
                raw_labels.append(label)
            else:
                unlabeled.append(text.strip())
    except UnicodeDecodeError as e:
        raise DataError(f"{path}: not valid UTF-8 (byte offset {e.start}); re-encode it") from None

    if not texts:
        raise DataError(f"{path}: no labeled rows (column {label_column!r} is empty everywhere)")
    if label_names is None:
        label_names = sorted(set(raw_labels))
    else:
        unknown = sorted(set(raw_labels) - set(label_names))
        if unknown:
            row_no = raw_labels.index(unknown[0]) + 1
            raise DataError(
                f"{path}: label {unknown[0]!r} (labeled row {row_no}) is not in the schema "
                f"{label_names}"
            )
    index = {name: i for i, name in enumerate(label_names)}
    t, y = dedupe(texts, [index[lab] for lab in raw_labels])
    return TextDataset(str(path), t, y, list(label_names), unlabeled)
