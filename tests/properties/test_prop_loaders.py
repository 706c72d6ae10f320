"""Property: any bytes saved as a CSV, TSV or JSONL file load as a dataset or raise one DataError.

Never a traceback of another type, never a message over several lines (the CLI prints it as
one), and a dataset that loads is well formed: texts stripped, non-empty and unique, labels
inside the schema, the pool disjoint from the labeled texts.
"""

from __future__ import annotations

import csv
import io
import json
import tempfile
from pathlib import Path

from hypothesis import event, given, settings
from hypothesis import strategies as st

from tinystudent.data import load_dataset
from tinystudent.errors import DataError

CELLS = st.one_of(
    st.sampled_from(["", " ", "pos", "neg", "a text", "a text ", '"', "\n", "\r\n", "\x00"]),
    st.text(max_size=12),
)
HEADERS = st.lists(st.sampled_from(["text", "label", "other", "", "text "]), min_size=0, max_size=4)
JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner),
    max_leaves=6,
)


# Mostly well-formed rows with two classes, so that loading succeeds often enough to check
# what a loaded dataset looks like; the rest of the time, anything.
TEXTS = st.sampled_from(["a fine film", " dull ", "great", ""]) | st.text(min_size=1, max_size=12)


@st.composite
def label(draw: st.DrawFn) -> str:
    if draw(st.integers(0, 3)):
        return draw(st.sampled_from(["pos", "neg"]))
    return draw(st.sampled_from(["", " neg ", "other"]) | CELLS)


@st.composite
def row(draw: st.DrawFn) -> list[str]:
    if draw(st.integers(0, 4)):
        return [draw(TEXTS), draw(label())]
    return draw(st.lists(CELLS, max_size=4))


def _maybe_cut(draw: st.DrawFn, raw: bytes) -> bytes:
    """Mostly whole, sometimes truncated at any byte (a half-copied file)."""
    if draw(st.integers(0, 4)):
        return raw
    return raw[: draw(st.integers(0, len(raw)))]


@st.composite
def table_bytes(draw: st.DrawFn, delimiter: str) -> bytes:
    """A table that is often nearly valid: a header, rows of cells, sometimes ragged."""
    if draw(st.integers(0, 3)):
        header = draw(st.sampled_from([["text", "label"], ["label", "text"]]))
    else:
        header = draw(HEADERS)
    rows = draw(st.lists(row(), min_size=1, max_size=8))
    buf = io.StringIO()
    w = csv.writer(buf, delimiter=delimiter)
    w.writerow(header)
    w.writerows(rows)
    encoding = draw(st.sampled_from(["utf-8", "utf-8", "utf-8-sig", "latin-1"]))
    raw = buf.getvalue().encode(encoding, "replace")
    return _maybe_cut(draw, raw)


@st.composite
def jsonl_bytes(draw: st.DrawFn) -> bytes:
    objects = st.fixed_dictionaries({"text": TEXTS, "label": label()}) | st.fixed_dictionaries(
        {}, optional={"text": CELLS | JSON_VALUES, "label": CELLS | JSON_VALUES}
    )
    lines = draw(st.lists(objects | JSON_VALUES, max_size=8))
    return _maybe_cut(draw, "\n".join(json.dumps(x) for x in lines).encode())


def check_loads_or_one_error(suffix: str, data: bytes) -> None:
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / f"data{suffix}"
        path.write_bytes(data)
        try:
            ds = load_dataset(str(path))
        except DataError as e:
            message = str(e)
            event(f"DataError: {message[len(str(path)) + 2 :][:24]}")
            assert message.startswith(str(path)) and "\n" not in message, message
            return
    event("loaded")
    assert ds.texts and len(ds.texts) == len(ds.labels) == len(set(ds.texts))
    assert all(t == t.strip() and t for t in ds.texts + ds.unlabeled)
    assert all(0 <= y < len(ds.label_names) for y in ds.labels)
    assert not set(ds.unlabeled) & set(ds.texts)


@settings(max_examples=150, deadline=None)
@given(st.sampled_from([".csv", ".tsv", ".jsonl"]), st.binary(max_size=200))
def test_any_bytes(suffix: str, data: bytes) -> None:
    check_loads_or_one_error(suffix, data)


@settings(max_examples=150, deadline=None)
@given(
    st.sampled_from([(".csv", ","), (".tsv", "\t")]).flatmap(
        lambda s: st.tuples(st.just(s[0]), table_bytes(s[1]))
    )
)
def test_tables(case: tuple[str, bytes]) -> None:
    check_loads_or_one_error(*case)


@settings(max_examples=150, deadline=None)
@given(jsonl_bytes())
def test_jsonl(data: bytes) -> None:
    check_loads_or_one_error(".jsonl", data)


@st.composite
def labeled_rows(draw: st.DrawFn) -> list[tuple[str, str]]:
    texts = draw(
        st.lists(
            st.text(min_size=1, max_size=20).filter(lambda t: t.strip()),
            min_size=2,
            max_size=10,
            unique_by=str.strip,
        )
    )
    labels = ["pos", "neg"] + draw(
        st.lists(st.sampled_from(["pos", "neg"]), min_size=len(texts), max_size=len(texts))
    )
    return list(zip(texts, labels))


@settings(max_examples=100, deadline=None)
@given(st.sampled_from([".csv", ".tsv", ".jsonl"]), labeled_rows(), st.booleans())
def test_well_formed_files_round_trip(
    suffix: str, rows: list[tuple[str, str]], ascii_json: bool
) -> None:
    """Any text (quotes, delimiters, newlines, any Unicode) written properly loads back."""
    if suffix == ".jsonl":
        raw = "\n".join(
            json.dumps({"text": t, "label": y}, ensure_ascii=ascii_json) for t, y in rows
        )
    else:
        buf = io.StringIO()
        w = csv.writer(buf, delimiter="," if suffix == ".csv" else "\t")
        w.writerow(["text", "label"])
        w.writerows(rows)
        raw = buf.getvalue()
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / f"data{suffix}"
        path.write_text(raw, encoding="utf-8", newline="")
        ds = load_dataset(str(path))
    assert ds.texts == [t.strip() for t, _ in rows]
    assert [ds.label_names[y] for y in ds.labels] == [y for _, y in rows]
