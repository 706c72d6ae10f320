"""One process of the shared-cache test: labels TEXTS into a cache other processes also fill.

Run as `python fill_worker.py CACHE LOG OUT GO SHARD_SIZE DELAY SEED`: once imported, touches
LOG.ready and waits until the file GO exists (so all workers start together), labels the
texts (in an order given by SEED) with a slow fake teacher that appends every text it is
asked for to LOG before computing it, and saves the probabilities (in that order) to OUT,
plus its stats to OUT.json.
"""

from __future__ import annotations

import hashlib
import json
import random
import sys
import time
from pathlib import Path

import numpy as np

TEXTS = [f"review {i}: " + "good " * (i % 5) + "bad " * (i % 3) for i in range(160)]


def probs_of(text: str) -> np.ndarray:
    """Probabilities that depend only on the text: a single- and a multi-process run agree."""
    raw = np.frombuffer(hashlib.sha256(text.encode()).digest()[:3], dtype=np.uint8) + 1.0
    return (raw / raw.sum()).astype(np.float32)


class SlowTeacher:
    label_names = ["a", "b", "c"]
    fingerprint = "slow-fake-teacher"

    def __init__(self, log: Path | None = None, delay: float = 0.0) -> None:
        self.log, self.delay = log, delay

    def predict_proba(self, texts: list[str]) -> np.ndarray:
        if self.log is not None:
            with self.log.open("a", encoding="utf-8") as f:
                f.write("".join(t + "\n" for t in texts))
        time.sleep(self.delay)
        return np.stack([probs_of(t) for t in texts])


def ordered(seed: int) -> list[str]:
    texts = list(TEXTS)
    random.Random(seed).shuffle(texts)
    return texts


def main(argv: list[str]) -> None:
    from tinystudent.label import label_texts

    cache, log, out, go = (Path(a) for a in argv[:4])
    shard_size, delay, seed = int(argv[4]), float(argv[5]), int(argv[6])
    Path(f"{log}.ready").touch()
    while not go.exists():
        time.sleep(0.01)
    probs, stats = label_texts(SlowTeacher(log, delay), ordered(seed), cache, shard_size)
    np.save(out, probs)
    Path(f"{out}.json").write_text(json.dumps(stats.__dict__))


if __name__ == "__main__":
    main(sys.argv[1:])
