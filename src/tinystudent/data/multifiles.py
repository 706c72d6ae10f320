"""Multi-label files: a label set per row, as a JSON list or as one delimited cell.

JSONL and parquet rows may hold a list (`{"text": ..., "labels": ["a", "b"]}`); a CSV cell is
one string, so CSV/TSV need `data.label_separator` (e.g. "|": `sport|politics`). A null or
empty cell leaves the row unlabeled (pool text), as for single-label files; an explicit empty
list is an error, because "no label applies" and "not labelled" cannot be told apart. Every
row problem is collected and raised once, as `load_file` does.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tinystudent.data.files import FORMATS, LabelParser, _collect, _open_rows, _utf8_error
from tinystudent.data.multilabel import MultiLabelDataset, multi_hot
from tinystudent.data.problems import OnConflict, Problems, resolve_conflicts
from tinystudent.errors import DataError


def label_set_parser(separator: str | None) -> LabelParser:
    """A cell to the canonical key of its label set (a sorted JSON list), "" if unlabeled."""

    def parse(value: Any, line: int, column: str, problems: Problems) -> str | None:
        if value is None:
            return ""
        if isinstance(value, str):
            if not value.strip():
                return ""
            parts = value.split(separator) if separator else [value]
        elif isinstance(value, list):
            if not value:
                problems.add("empty_label_set", f"row {line} has an empty label list")
                return None
            parts = value
        elif isinstance(value, dict):
            problems.add("bad_row", f"row {line} column {column!r} is not a label or a list")
            return None
        else:
            parts = [str(value)]
        labels = []
        for part in parts:
            if not isinstance(part, (str, int)) or isinstance(part, bool):
                problems.add("bad_row", f"row {line} column {column!r} holds a non-label {part!r}")
                return None
            text = str(part).strip()
            if not text:
                where = f"between separators {separator!r}" if separator else "in its list"
                problems.add("bad_row", f"row {line} has an empty label {where}")
                return None
            labels.append(text)
        return json.dumps(sorted(set(labels)))

    return parse


def load_multilabel_file(
    path: str | Path,
    text_column: str = "text",
    label_column: str = "label",
    label_names: list[str] | None = None,
    on_conflict: OnConflict = "error",
    label_separator: str | None = None,
) -> MultiLabelDataset:
    """Load a multi-label file; `label_names` fixes the schema (any other label is an error).

    A text given twice with two different label sets is a conflict (`on_conflict` decides)."""
    path = Path(path).expanduser()
    fmt = FORMATS.get(path.suffix.lower())
    if fmt in ("csv", "tsv") and not label_separator:
        raise DataError(
            f"{path}: a multi-label {fmt.upper()} holds each row's labels in one cell; set "
            "data.label_separator (e.g. '|' for cells like sport|politics)"
        )
    if label_separator == "":
        raise DataError("data.label_separator: must not be empty")
    problems = Problems(str(path))
    parse = label_set_parser(label_separator)
    try:
        got = _collect(path, _open_rows(path, problems), text_column, label_column, problems, parse)
    except UnicodeDecodeError:
        raise DataError(f"{path}: {_utf8_error(path)}; re-encode the file as UTF-8") from None
    sets = [json.loads(key) for key in got.labels]
    if label_names is not None:
        known = set(label_names)
        for labels, line in zip(sets, got.lines):
            for label in labels:
                if label not in known:
                    problems.add(
                        "unknown_label",
                        f"row {line} has label {label!r}, which is not in the schema "
                        f"{list(label_names)}",
                    )
    keep, cleaning = resolve_conflicts(got.texts, got.labels, got.lines, on_conflict, problems)
    problems.raise_if_any()
    if not got.texts:
        raise DataError(f"{path}: no labeled rows (column {label_column!r} is empty everywhere)")
    if not keep:
        raise DataError(f"{path}: no labeled rows left after data.on_conflict: {on_conflict}")
    names = sorted({x for s in sets for x in s}) if label_names is None else list(label_names)
    texts: list[str] = []
    kept_sets: list[list[str]] = []
    seen: set[str] = set()
    for i in keep:
        if got.texts[i] not in seen:  # the same text with the same set: kept once
            seen.add(got.texts[i])
            texts.append(got.texts[i])
            kept_sets.append(sets[i])
    cleaning["duplicate_rows_dropped"] = len(keep) - len(texts)
    pool = [u for u in dict.fromkeys(got.unlabeled) if u not in seen]
    return MultiLabelDataset(
        str(path), texts, multi_hot(kept_sets, names), names, pool, cleaning=cleaning
    )
