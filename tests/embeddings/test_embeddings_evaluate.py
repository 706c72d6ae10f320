"""Evaluation metrics on constructed cases: perfect, reversed and random students."""

from __future__ import annotations

import numpy as np
import pytest

from tinystudent.embeddings.evaluate import (
    EvalConfig,
    EvalTask,
    evaluate_encoder,
    linear_probe_accuracy,
    neighbour_recall,
    similarity_spearman,
    top_k,
)


def test_spearman_is_one_for_rotated_and_scaled_copies():
    rng = np.random.default_rng(0)
    t = rng.normal(size=(30, 8))
    q, _ = np.linalg.qr(rng.normal(size=(8, 8)))
    s = (t @ q) * rng.uniform(0.5, 2.0, size=(30, 1))  # rotation + per-row scale keep cosines
    assert similarity_spearman(s, t) == pytest.approx(1.0)
    assert neighbour_recall(s, t, k=5) == pytest.approx(1.0)


def arc(angles: list[float]) -> np.ndarray:
    """Unit vectors at these angles: cosine similarity falls as the angle gap grows."""
    a = np.asarray(angles)
    return np.stack([np.cos(a), np.sin(a)], axis=1)


def test_spearman_is_minus_one_for_reversed_similarities():
    # Pairs (AB, AC, BC): the teacher ranks AB closest and AC farthest; the student the reverse.
    teacher = arc([0.0, 0.1, 1.0])
    student = arc([0.0, 1.0, 0.1])
    assert similarity_spearman(student, teacher) == pytest.approx(-1.0)
    assert similarity_spearman(np.ones((3, 2)), teacher) == 0.0  # a constant encoder


def test_random_student_has_low_spearman_and_recall():
    rng = np.random.default_rng(1)
    t, s = rng.normal(size=(200, 16)), rng.normal(size=(200, 16))
    assert abs(similarity_spearman(s, t)) < 0.1
    assert neighbour_recall(s, t, k=10) < 0.15  # chance is 10 / 199


def test_recall_counts_shared_neighbours():
    t = arc(list(np.linspace(0, 1.5, 6)))  # nearest by cosine = next along the arc
    assert {int(i) for i in top_k(t, 1)[0]} == {1}
    assert {int(i) for i in top_k(t, 2)[2]} == {1, 3}
    # A student that swaps the order of points 0..5 keeps no first neighbour of the ends.
    s = t[[0, 5, 1, 4, 2, 3]]
    assert neighbour_recall(s, t, k=1) < 0.5


def test_linear_probe_separates_separable_classes():
    rng = np.random.default_rng(2)
    centres = np.array([[5.0, 0.0, 0.0], [0.0, 5.0, 0.0]])
    y = rng.integers(0, 2, size=120)
    x = centres[y] + rng.normal(size=(120, 3))
    assert linear_probe_accuracy(x[:80], list(y[:80]), x[80:], list(y[80:])) > 0.95
    noise = rng.normal(size=(120, 3))
    assert linear_probe_accuracy(noise[:80], list(y[:80]), noise[80:], list(y[80:])) < 0.8


def test_evaluate_encoder_scores_the_teacher_as_perfect():
    rng = np.random.default_rng(3)
    words = [f"w{i}" for i in range(60)]
    table = {w: rng.normal(size=8) for w in words}

    def teacher(texts: list[str]) -> np.ndarray:
        return np.stack([table[t] for t in texts])

    labels = [int(table[w][0] > 0) for w in words]
    task = EvalTask("toy", words[:40], labels[:40], words[40:], labels[40:])
    cfg = EvalConfig(geometry_texts=20, k=5, max_train=30)
    out = evaluate_encoder(teacher, [task], teacher, cfg)
    assert out["toy"]["spearman"] == pytest.approx(1.0)
    assert out["toy"]["recall_at_5"] == pytest.approx(1.0)
    assert out["toy"]["lr_train"] == 30 and out["toy"]["lr_test"] == 20
    assert out["mean"]["lr_accuracy"] == out["toy"]["lr_accuracy"]
