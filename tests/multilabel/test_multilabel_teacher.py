"""The multi-label frozen teacher on a tiny random BERT: a head and a threshold per label."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from tests.multilabel.conftest import toy_multilabel
from tinystudent.data.multilabel import multi_hot
from tinystudent.evaluate.multilabel import THRESHOLD_GRID
from tinystudent.teachers.frozen import FrozenEncoderTeacher, FrozenTeacherConfig
from tinystudent.teachers.multilabel import MultiLabelFrozenTeacher

NAMES = ["happy", "numbers", "sad"]


def _data(n: int, seed: int) -> tuple[list[str], np.ndarray]:
    rows = toy_multilabel(n, seed)
    return [t for t, _ in rows], multi_hot([s for _, s in rows], NAMES)


def test_fits_sigmoids_and_thresholds_and_reloads(tiny_teacher_dir: Path, tmp_path: Path) -> None:
    cfg = FrozenTeacherConfig(model=str(tiny_teacher_dir))
    teacher = MultiLabelFrozenTeacher.from_config(NAMES, cfg, tmp_path / "emb")
    texts, targets = _data(60, seed=0)
    info = teacher.fit(texts, targets, seed=0)
    assert len(info["thresholds"]) == 3 and all(t in THRESHOLD_GRID for t in info["thresholds"])
    probs = teacher.predict_proba(texts)
    assert probs.shape == (60, 3) and ((probs >= 0) & (probs <= 1)).all()
    assert not np.allclose(probs.sum(1), 1.0)  # independent sigmoids, not a softmax
    single = FrozenEncoderTeacher.from_config(NAMES, cfg, tmp_path / "emb")
    assert teacher.fingerprint != single.fingerprint

    teacher.save(tmp_path / "t")
    again = MultiLabelFrozenTeacher.load(tmp_path / "t", cache_dir=tmp_path / "emb")
    assert again.thresholds == teacher.thresholds
    np.testing.assert_allclose(again.predict_proba(texts), probs, atol=1e-6)
    np.testing.assert_array_equal(
        again.predict_labels(probs), (probs >= np.asarray(teacher.thresholds)).astype(np.uint8)
    )


def test_a_label_every_text_carries_gets_a_constant_head(
    tiny_teacher_dir: Path, tmp_path: Path
) -> None:
    cfg = FrozenTeacherConfig(model=str(tiny_teacher_dir))
    teacher = MultiLabelFrozenTeacher.from_config(NAMES, cfg, tmp_path)
    texts, targets = _data(30, seed=0)
    targets[:, 0] = 1
    info = teacher.fit(texts, targets)
    assert info["C"][0] is None and (teacher.predict_proba(texts)[:, 0] > 0.99).all()
