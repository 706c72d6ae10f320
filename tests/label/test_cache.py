"""The soft-label cache: reuse, resume after a crash, and damaged shards never used."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tinystudent.label import SoftLabelCache, label_texts


class CountingTeacher:
    """A fake teacher whose probabilities depend only on the text, counting every call."""

    label_names = ["a", "b"]

    def __init__(self, fingerprint: str = "fake", fail_after: int | None = None) -> None:
        self._fp = fingerprint
        self.seen: list[str] = []
        self.fail_after = fail_after

    @property
    def fingerprint(self) -> str:
        return self._fp

    def predict_proba(self, texts: list[str]) -> np.ndarray:
        if self.fail_after is not None and len(self.seen) >= self.fail_after:
            raise KeyboardInterrupt("simulated crash")
        self.seen.extend(texts)
        p = np.array([(len(t) % 7) / 7 for t in texts], dtype=np.float32)
        return np.stack([p, 1 - p], axis=1)


TEXTS = [f"text number {i} " + "x" * (i % 13) for i in range(50)]


def test_second_call_computes_nothing(tmp_path: Path) -> None:
    t = CountingTeacher()
    first, s1 = label_texts(t, TEXTS, tmp_path, shard_size=8)
    assert s1.computed == 50 and s1.hits == 0
    t2 = CountingTeacher()
    second, s2 = label_texts(t2, TEXTS, tmp_path, shard_size=8)
    assert s2.computed == 0 and s2.hits == 50 and t2.seen == []
    np.testing.assert_array_equal(first, second)
    np.testing.assert_allclose(first, t.predict_proba(TEXTS))


def test_outputs_follow_input_order_with_duplicates(tmp_path: Path) -> None:
    texts = ["bb", "a", "bb", "ccc"]
    probs, stats = label_texts(CountingTeacher(), texts, tmp_path)
    assert stats.computed == 3
    np.testing.assert_array_equal(probs[0], probs[2])
    np.testing.assert_allclose(probs, CountingTeacher().predict_proba(texts))


def test_other_teacher_does_not_reuse(tmp_path: Path) -> None:
    label_texts(CountingTeacher("one"), TEXTS, tmp_path)
    t = CountingTeacher("two")
    _, stats = label_texts(t, TEXTS, tmp_path)
    assert stats.computed == 50 and len(t.seen) == 50


def test_interrupted_labeling_resumes(tmp_path: Path) -> None:
    crashing = CountingTeacher(fail_after=16)
    with pytest.raises(KeyboardInterrupt):
        label_texts(crashing, TEXTS, tmp_path, shard_size=8)
    assert len(SoftLabelCache(tmp_path, "fake", 2)) == 16  # two finished shards kept
    t = CountingTeacher()
    probs, stats = label_texts(t, TEXTS, tmp_path, shard_size=8)
    assert stats.hits == 16 and stats.computed == 34 and len(t.seen) == 34
    np.testing.assert_allclose(probs, CountingTeacher().predict_proba(TEXTS))


@pytest.mark.parametrize("damage", ["truncate", "flip", "garbage"])
def test_damaged_shard_is_detected_and_recomputed(tmp_path: Path, damage: str) -> None:
    label_texts(CountingTeacher(), TEXTS, tmp_path, shard_size=25)
    shard = sorted((tmp_path / "fake").glob("shard-*"))[0]
    data = bytearray(shard.read_bytes())
    if damage == "truncate":
        data = data[: len(data) // 2]
    elif damage == "flip":
        data[-5] ^= 0xFF  # inside the probabilities: only the checksum can tell
    else:
        data = bytearray(b"not a safetensors file")
    shard.write_bytes(bytes(data))
    t = CountingTeacher()
    probs, stats = label_texts(t, TEXTS, tmp_path, shard_size=25)
    assert stats.corrupt_shards == 1 and stats.computed == 25 and len(t.seen) == 25
    np.testing.assert_allclose(probs, CountingTeacher().predict_proba(TEXTS))
