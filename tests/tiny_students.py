"""Tiny students of every kind, built in the test (random weights, no packaged asset).

A plain module (not conftest), imported as `tests.tiny_students` from any test directory.
"""

from __future__ import annotations

import random

import torch

from tinystudent.students import Student, build_student

LABELS = ["neg", "pos"]
GOOD = ["good", "great", "superb", "lovely", "fine"]
BAD = ["bad", "awful", "dull", "poor", "boring"]
FILLER = ["the", "movie", "plot", "was", "actor", "scene", "story", "and", "a", "quite", "film"]

TINY: dict[str, dict[str, object]] = {
    "pqrnn": {"features": 64, "bottleneck": 16, "hidden": 8, "layers": 2, "max_tokens": 40},
    "bilstm": {"embeddings": "random", "embed_dim": 16, "hidden": 8, "head_hidden": 8},
    "cnn": {"embeddings": "random", "embed_dim": 16, "filters": 8},
    "bag": {"init": "random", "embed_dim": 16, "head_hidden": 16},
    "transformer": {
        "init": "random",
        "tokenizer": "trained",
        "vocab_size": 120,
        "layers": 1,
        "hidden": 16,
        "heads": 2,
        "intermediate": 32,
        "max_tokens": 48,
    },
}
KINDS = sorted(TINY)


def synthetic(n: int, seed: int) -> tuple[list[str], list[int]]:
    """Filler words around one sentiment word; the label is which list that word is from."""
    rng = random.Random(seed)
    texts, labels = [], []
    for i in range(n):
        y = i % 2
        words = rng.sample(FILLER, rng.randint(2, 9))
        words.insert(rng.randint(0, len(words)), rng.choice(GOOD if y else BAD))
        texts.append(" ".join(words) + rng.choice(["", " .", " !"]))
        labels.append(y)
    return texts, labels


# Lengths from 0 to past max_tokens (the pQRNN's 40: three QRNN chunks, truncation), unicode.
PROBE = [
    "",
    "good",
    "The plot was GREAT , and the actor superb !",
    "naïve café — déjà vu 😀 ?",
    " ".join(["dull"] * 17),
    " ".join(["the movie was quite a film"] * 12),
] + synthetic(40, seed=7)[0]


def tiny(kind: str, seed: int = 0) -> Student:
    torch.manual_seed(seed)
    student = build_student(kind, dict(TINY[kind]), LABELS)
    student.fit_preprocessing(synthetic(80, seed=1)[0])
    return student.eval()
