"""Data problems collected over a whole file and reported in one error, grouped by kind.

A user cleaning a 38k-row export needs every bad row at once, not one rerun per row: the
loaders record each problem here and raise once at the end, with a count per kind and the
first few rows of each. Repeated texts with different labels can instead be resolved by a
declared policy (`data.on_conflict`), never silently.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Literal

from tinystudent.errors import DataError

OnConflict = Literal["error", "drop", "majority"]

#: kind -> (singular noun, plural noun, what to do about it)
KINDS: dict[str, tuple[str, str, str]] = {
    "bad_row": ("bad row", "bad rows", "fix or remove these rows"),
    "empty_text": ("empty text", "empty texts", "fill in or remove these rows"),
    "unknown_label": (
        "unknown label",
        "unknown labels",
        "fix these labels or add them to data.label_names",
    ),
    "empty_label_set": (
        "empty label set",
        "empty label sets",
        "give each labelled row at least one label (null leaves a row unlabeled)",
    ),
    "conflict": (
        "text with conflicting labels",
        "texts with conflicting labels",
        "keep one label per text, or set data.on_conflict: drop | majority",
    ),
}


class DataProblemsError(DataError):
    """Every problem found in one file: `counts` per kind and the first rows of each."""

    def __init__(self, message: str, counts: dict[str, int], examples: dict[str, list[str]]):
        super().__init__(message)
        self.counts = counts
        self.examples = examples


@dataclass
class Problems:
    """Problems of one file by kind: every one counted, the first `shown` described."""

    source: str
    shown: int = 3
    counts: Counter[str] = field(default_factory=Counter)
    examples: dict[str, list[str]] = field(default_factory=dict)

    def add(self, kind: str, detail: str) -> None:
        if kind not in KINDS:
            raise ValueError(f"unknown problem kind {kind!r}")
        self.counts[kind] += 1
        shown = self.examples.setdefault(kind, [])
        if len(shown) < self.shown:
            shown.append(detail)

    def raise_if_any(self) -> None:
        if not self.counts:
            return
        counts = {k: self.counts[k] for k in KINDS if self.counts[k]}
        raise DataProblemsError(self.message(), counts, dict(self.examples))

    def message(self) -> str:
        """One line: a lone problem as a sentence, several as counts per kind with examples."""
        total = sum(self.counts.values())
        if total == 1:
            kind = next(iter(self.counts))
            return f"{self.source}: {self.examples[kind][0]}; {KINDS[kind][2]}"
        parts = []
        for kind, (one, many, hint) in KINDS.items():
            n = self.counts[kind]
            if not n:
                continue
            shown = self.examples[kind]
            more = f"; {n - len(shown)} more" if n > len(shown) else ""
            parts.append(f"{n} {one if n == 1 else many} [{'; '.join(shown)}{more}] ({hint})")
        return f"{self.source}: {total} problems, nothing loaded: " + "; ".join(parts)


def resolve_conflicts(
    texts: list[str],
    labels: list[str],
    lines: list[int],
    policy: OnConflict,
    problems: Problems,
) -> tuple[list[int], dict[str, Any]]:
    """Indices of the rows to keep, and what the policy did (for the run's report).

    `error` records one problem per conflicting text and keeps everything (the caller raises);
    `drop` removes every row of a conflicting text; `majority` keeps the rows carrying a text's
    most frequent label and drops the text when the top labels tie.
    """
    rows_of: dict[str, list[int]] = {}
    for i, text in enumerate(texts):
        rows_of.setdefault(text, []).append(i)
    dropped: set[int] = set()
    conflicting = tied = 0
    for idx in rows_of.values():
        if len({labels[i] for i in idx}) < 2:
            continue
        conflicting += 1
        if policy == "error":
            first = idx[0]
            other = next(i for i in idx if labels[i] != labels[first])
            problems.add(
                "conflict",
                f"row {lines[other]} repeats the text of row {lines[first]} with another label "
                f"({labels[other]!r} vs {labels[first]!r})",
            )
        elif policy == "drop":
            dropped.update(idx)
        else:
            ranked = Counter(labels[i] for i in idx).most_common()
            if ranked[0][1] == ranked[1][1]:
                tied += 1
                dropped.update(idx)
            else:
                dropped.update(i for i in idx if labels[i] != ranked[0][0])
    info: dict[str, Any] = {
        "on_conflict": policy,
        "conflicting_texts": conflicting,
        "conflict_rows_dropped": len(dropped),
    }
    if policy == "majority":
        info["conflict_texts_tied"] = tied
    return [i for i in range(len(texts)) if i not in dropped], info
