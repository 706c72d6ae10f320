"""The encoder teacher on a tiny random BERT: it learns, saves, reloads, and fingerprints."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from tests.conftest import toy_rows
from tinystudent.teachers import EncoderTeacher, EncoderTeacherConfig


def test_fine_tune_save_load(tiny_teacher_dir: Path, tmp_path: Path) -> None:
    rows = toy_rows(64)
    texts = [t for t, _ in rows]
    labels = [0 if y == "neg" else 1 for _, y in rows]
    cfg = EncoderTeacherConfig(model=str(tiny_teacher_dir), epochs=15, lr=2e-3, batch_size=16)
    teacher = EncoderTeacher.from_pretrained(["neg", "pos"], cfg)
    before = teacher.fingerprint
    losses = teacher.fine_tune(texts, labels, seed=0)
    assert losses[-1] < losses[0]
    assert teacher.fingerprint != before  # new weights, new cache key
    held_out = toy_rows(40, seed=1)
    probs = teacher.predict_proba([t for t, _ in held_out])
    acc = np.mean(probs.argmax(1) == [0 if y == "neg" else 1 for _, y in held_out])
    assert acc > 0.8
    np.testing.assert_allclose(probs.sum(1), 1, atol=1e-5)

    teacher.save(tmp_path / "t")
    again = EncoderTeacher.load(tmp_path / "t")
    assert again.fingerprint == teacher.fingerprint
    np.testing.assert_allclose(
        again.predict_proba(texts[:10]), teacher.predict_proba(texts[:10]), atol=1e-6
    )
    assert not list((tmp_path / "t").glob("*.bin"))  # safetensors only


def test_predictions_do_not_depend_on_batching(tiny_teacher_dir: Path) -> None:
    cfg = EncoderTeacherConfig(model=str(tiny_teacher_dir), predict_batch_size=3)
    teacher = EncoderTeacher.from_pretrained(["neg", "pos"], cfg)
    texts = [t for t, _ in toy_rows(10)] + ["great " * 30]
    one_by_one = np.concatenate([teacher.predict_proba([t]) for t in texts])
    np.testing.assert_allclose(teacher.predict_proba(texts), one_by_one, atol=1e-5)
