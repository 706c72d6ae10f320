"""One entry point for datasets: a built-in name, a local file, or a hub dataset id."""

from __future__ import annotations

from pathlib import Path

from tinystudent.data.builtin import BUILTIN
from tinystudent.data.dataset import TextDataset, dedupe
from tinystudent.data.files import load_file
from tinystudent.data.multifiles import load_multilabel_file
from tinystudent.data.multilabel import MultiLabelDataset
from tinystudent.data.pairs import MULTI_LABEL_BUILTIN
from tinystudent.data.problems import OnConflict
from tinystudent.errors import DataError


def load_dataset(
    source: str,
    text_column: str = "text",
    label_column: str = "label",
    label_names: list[str] | None = None,
    on_conflict: OnConflict = "error",
) -> TextDataset:
    """Built-in name first, then a local path, then a hub id (needs `datasets` and a network).

    `on_conflict` applies to files: what a text given twice with two labels does."""
    if source in BUILTIN:
        return BUILTIN[source]()
    if Path(source).expanduser().exists() or Path(source).suffix:
        return load_file(source, text_column, label_column, label_names, on_conflict)
    if "/" in source:
        return _load_hub(source, text_column, label_column)
    if source in MULTI_LABEL_BUILTIN:
        raise DataError(f"dataset {source!r} is multi-label: set data.multi_label: true")
    raise DataError(
        f"dataset {source!r} is neither built in ({', '.join(sorted(BUILTIN))}), "
        "a local file, nor a hub id of the form owner/name"
    )


def load_multilabel_dataset(
    source: str,
    text_column: str = "text",
    label_column: str = "label",
    label_names: list[str] | None = None,
    on_conflict: OnConflict = "error",
    label_separator: str | None = None,
) -> MultiLabelDataset:
    """A multi-label built-in (`bbc_pairs`) or a local file; single-label built-ins refuse."""
    if source in MULTI_LABEL_BUILTIN:
        return MULTI_LABEL_BUILTIN[source]()
    if source in BUILTIN:
        raise DataError(
            f"dataset {source!r} has one label per text; multi-label built-ins: "
            f"{', '.join(sorted(MULTI_LABEL_BUILTIN))} (or unset data.multi_label)"
        )
    if Path(source).expanduser().exists() or Path(source).suffix:
        return load_multilabel_file(
            source, text_column, label_column, label_names, on_conflict, label_separator
        )
    raise DataError(
        f"dataset {source!r} is neither a multi-label built-in "
        f"({', '.join(sorted(MULTI_LABEL_BUILTIN))}) nor a local file"
    )


def _load_hub(name: str, text_column: str, label_column: str) -> TextDataset:
    """Hub datasets, for users with a network; the train split's labels define the schema."""
    try:
        import datasets
    except ImportError:
        raise DataError(f"loading {name!r} from the hub needs: pip install datasets") from None
    try:
        ds = datasets.load_dataset(name, split="train")
    except Exception as e:  # network, auth or missing-dataset errors all end here
        raise DataError(f"could not load hub dataset {name!r}: {e}") from None
    feature = ds.features.get(label_column)
    names = list(getattr(feature, "names", None) or sorted({str(v) for v in ds[label_column]}))
    if getattr(feature, "names", None):
        labels = list(ds[label_column])
    else:
        labels = [names.index(str(v)) for v in ds[label_column]]
    texts, labels = dedupe([str(t) for t in ds[text_column]], labels)
    return TextDataset(name, texts, labels, names)
