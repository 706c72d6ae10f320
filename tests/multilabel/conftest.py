"""A toy multi-label set: each text names one or two topics by their words (tiny-BERT vocab)."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from tests.conftest import FILLER, NEGATIVE, POSITIVE

#: topic -> the words that signal it (all in the tiny teacher's vocabulary)
TOPICS = {"happy": POSITIVE, "sad": NEGATIVE, "numbers": [str(i) for i in range(10)]}


def toy_multilabel(n: int, seed: int = 0) -> list[tuple[str, list[str]]]:
    """Texts with one topic (every other row) or two, the label set naming them."""
    rng = random.Random(seed)
    names = sorted(TOPICS)
    rows = []
    for i in range(n):
        chosen = rng.sample(names, 1 if i % 2 else 2)
        words = rng.sample(FILLER, 4) + [rng.choice(TOPICS[t]) for t in chosen]
        rng.shuffle(words)
        rows.append((" ".join(words) + f" row{i}", sorted(chosen)))
    return rows


@pytest.fixture(scope="session")
def toy_jsonl(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("ml") / "topics.jsonl"
    with path.open("w", encoding="utf-8") as f:
        for text, labels in toy_multilabel(240):
            f.write(json.dumps({"text": text, "labels": labels}) + "\n")
    return path
