"""Several teachers as one: average, accuracy weights, MC-dropout certainty, label-set merging."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tests.conftest import toy_rows
from tinystudent.errors import TinyStudentError
from tinystudent.teachers.amalgamate import (
    AmalgamatedTeacher,
    AmalgamationSpec,
    agreement_markdown,
    agreement_matrix,
    certainty,
    combine,
    known_mask,
    to_union,
)
from tinystudent.teachers.encoder import EncoderTeacher, EncoderTeacherConfig
from tinystudent.teachers.frozen import FrozenEncoderTeacher, FrozenTeacherConfig


class Fixed:
    """A teacher with scripted probabilities per text (and scripted MC samples if given)."""

    def __init__(self, labels: list[str], table: dict[str, list[float]], samples=None) -> None:
        self.label_names = labels
        self.table = table
        self.samples = samples  # text -> [n, C]
        self.fingerprint = f"fixed{sorted(table.items())}"

    def predict_proba(self, texts: list[str]) -> np.ndarray:
        return np.array([self.table[t] for t in texts], dtype=np.float32)

    def predict_proba_samples(self, texts: list[str], n: int, seed: int = 0) -> np.ndarray:
        if self.samples is None:
            return np.repeat(self.predict_proba(texts)[None], n, 0)
        return np.stack([np.asarray(self.samples[t])[:n] for t in texts], axis=1)


def test_average_over_the_same_labels() -> None:
    a = Fixed(["x", "y"], {"t": [0.9, 0.1]})
    b = Fixed(["x", "y"], {"t": [0.5, 0.5]})
    amalg = AmalgamatedTeacher([a, b], AmalgamationSpec(method="average"))
    np.testing.assert_allclose(amalg.predict_proba(["t"]), [[0.7, 0.3]], atol=1e-6)


def test_label_sets_merge_into_the_union_without_dilution() -> None:
    a = Fixed(["x", "y"], {"t": [0.8, 0.2]})
    b = Fixed(["y", "z"], {"t": [0.2, 0.8]})
    amalg = AmalgamatedTeacher([a, b], names=["a", "b"])
    assert amalg.label_names == ["x", "y", "z"]
    np.testing.assert_array_equal(amalg.known, [[1, 1, 0], [0, 1, 1]])
    # x and z come from the one teacher that knows them (not halved by the one that does not);
    # y is the mean of both: (0.8, 0.2, 0.8) renormalised
    np.testing.assert_allclose(amalg.predict_proba(["t"])[0], np.array([0.8, 0.2, 0.8]) / 1.8)
    # a naive mean over the union would have halved x and z
    naive = (
        to_union(a.predict_proba(["t"]), a.label_names, amalg.label_names)
        + to_union(b.predict_proba(["t"]), b.label_names, amalg.label_names)
    ) / 2
    assert naive[0, 0] == pytest.approx(0.4)
    # an explicit label order is honoured; a label nobody knows is an error
    ordered = AmalgamatedTeacher([a, b], label_names=["z", "y", "x"])
    np.testing.assert_allclose(ordered.predict_proba(["t"])[0], np.array([0.8, 0.2, 0.8]) / 1.8)
    with pytest.raises(TinyStudentError, match="no teacher knows"):
        AmalgamatedTeacher([a, b], label_names=["x", "y", "z", "w"])
    with pytest.raises(TinyStudentError, match="not in"):
        AmalgamatedTeacher([a, b], label_names=["x", "y"])


def test_combine_weights_per_example() -> None:
    p1 = np.array([[1.0, 0.0], [1.0, 0.0]])
    p2 = np.array([[0.0, 1.0], [0.0, 1.0]])
    known = known_mask([["a", "b"], ["a", "b"]], ["a", "b"])
    q = combine([p1, p2], known, np.array([[0.9, 0.1], [0.1, 0.9]]))
    np.testing.assert_allclose(q, [[0.9, 0.1], [0.1, 0.9]])


def test_uncertainty_trusts_the_certain_teacher_per_example() -> None:
    """Teacher A is sure on t1 and wavers on t2 across its dropout passes; B the opposite."""
    rng = np.random.default_rng(0)

    def wavering(n: int) -> np.ndarray:
        p = rng.uniform(0.1, 0.9, n)
        return np.stack([p, 1 - p], 1)

    sure_x = np.tile([0.95, 0.05], (8, 1))
    sure_y = np.tile([0.05, 0.95], (8, 1))
    a = Fixed(["x", "y"], {"t1": [0.95, 0.05], "t2": [0.5, 0.5]}, {"t1": sure_x, "t2": wavering(8)})
    b = Fixed(["x", "y"], {"t1": [0.5, 0.5], "t2": [0.05, 0.95]}, {"t1": wavering(8), "t2": sure_y})
    spec = AmalgamationSpec(method="uncertainty", mc_samples=8)
    q = AmalgamatedTeacher([a, b], spec).predict_proba(["t1", "t2"])
    assert q[0, 0] > 0.85 and q[1, 1] > 0.85
    avg = AmalgamatedTeacher([a, b]).predict_proba(["t1", "t2"])
    assert q[0, 0] > avg[0, 0] and q[1, 1] > avg[1, 1]
    # certainty: one minus normalised entropy, floored
    np.testing.assert_allclose(certainty(np.array([[0.5, 0.5], [1.0, 0.0]]), 2), [1e-3, 1.0])


def test_uncertainty_needs_no_sampling_method() -> None:
    """A teacher without predict_proba_samples is judged by its own confidence."""

    class Plain:
        label_names = ["x", "y"]
        fingerprint = "plain"

        def predict_proba(self, texts: list[str]) -> np.ndarray:
            return np.array([[0.99, 0.01]] * len(texts))

    unsure = Fixed(["x", "y"], {"t": [0.4, 0.6]})
    q = AmalgamatedTeacher([Plain(), unsure], AmalgamationSpec(method="uncertainty"))
    assert q.predict_proba(["t"])[0, 0] > 0.9


def test_accuracy_weights_from_gold() -> None:
    texts = ["a", "b", "c", "d"]
    gold = [0, 1, 0, 1]
    good = Fixed(["x", "y"], {"a": [0.9, 0.1], "b": [0.2, 0.8], "c": [0.7, 0.3], "d": [0.4, 0.6]})
    bad = Fixed(["x", "y"], {"a": [0.1, 0.9], "b": [0.2, 0.8], "c": [0.3, 0.7], "d": [0.4, 0.6]})
    amalg = AmalgamatedTeacher([good, bad], AmalgamationSpec(method="accuracy"), ["good", "bad"])
    info = amalg.fit(texts, gold)
    assert info["gold_accuracy"] == {"good": 1.0, "bad": 0.5}
    np.testing.assert_allclose(amalg.weights, [1.0, 0.5])
    before = amalg.fingerprint
    np.testing.assert_allclose(
        amalg.predict_proba(["a"])[0], [(0.9 + 0.05) / 1.5, (0.1 + 0.45) / 1.5]
    )
    amalg.weights = np.array([1.0, 1.0])
    assert amalg.fingerprint != before


def test_accuracy_counts_only_labels_a_teacher_knows() -> None:
    part = Fixed(["x"], {"a": [1.0], "b": [1.0]})
    full = Fixed(["x", "y"], {"a": [0.6, 0.4], "b": [0.6, 0.4]})
    amalg = AmalgamatedTeacher([part, full], AmalgamationSpec(method="accuracy"))
    info = amalg.fit(["a", "b"], [0, 1])
    assert info["gold_accuracy"] == {"teacher0": 1.0, "teacher1": 0.5}


def test_agreement() -> None:
    m = agreement_matrix({"a": np.array([0, 1, 1]), "b": np.array([0, 0, 1])})
    assert m["a"]["b"] == pytest.approx(2 / 3) and m["a"]["a"] == 1.0
    assert "| a | 1.000 | 0.667 |" in agreement_markdown(m)


def test_encoder_teacher_mc_dropout(tiny_teacher_dir: Path) -> None:
    cfg = EncoderTeacherConfig(model=str(tiny_teacher_dir), dropout=0.3, epochs=1)
    teacher = EncoderTeacher.from_pretrained(["neg", "pos"], cfg)
    teacher.eval()
    texts = [t for t, _ in toy_rows(6)]
    samples = teacher.predict_proba_samples(texts, 5, seed=0)
    assert samples.shape == (5, 6, 2) and samples.std(0).max() > 1e-4
    np.testing.assert_allclose(samples.sum(-1), 1.0, atol=1e-5)
    np.testing.assert_allclose(samples, teacher.predict_proba_samples(texts, 5, seed=0))
    assert not teacher.training
    np.testing.assert_allclose(teacher.predict_proba(texts), teacher.predict_proba(texts))


def test_frozen_teacher_mc_dropout(tiny_teacher_dir: Path, tmp_path: Path) -> None:
    cfg = FrozenTeacherConfig(model=str(tiny_teacher_dir))
    teacher = FrozenEncoderTeacher.from_config(["neg", "pos"], cfg, tmp_path)
    rows = toy_rows(40)
    teacher.fit([t for t, _ in rows], [["neg", "pos"].index(y) for _, y in rows])
    texts = [t for t, _ in rows[:5]]
    s = teacher.predict_proba_samples(texts, 6, seed=1)
    assert s.shape == (6, 5, 2) and s.std(0).max() > 1e-4
    np.testing.assert_allclose(s, teacher.predict_proba_samples(texts, 6, seed=1))
    # the MC mean keeps the deterministic prediction's labels here (it only softens them)
    np.testing.assert_array_equal(s.mean(0).argmax(1), teacher.predict_proba(texts).argmax(1))
