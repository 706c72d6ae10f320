"""The bce objective's math and registry entry, and per-label threshold choice."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tinystudent.evaluate.multilabel import (
    best_threshold,
    choose_thresholds,
    decide,
    multilabel_metrics,
)
from tinystudent.losses import soft_bce
from tinystudent.train.objectives import OBJECTIVES, ObjectiveContext


def test_soft_bce_is_smallest_where_the_student_matches_the_teacher() -> None:
    p = torch.tensor([[0.9, 0.2, 0.6]])
    at_teacher = soft_bce(torch.logit(p), p)
    for shift in (-1.0, 0.5, 2.0):
        assert soft_bce(torch.logit(p) + shift, p) > at_teacher
    logits = torch.zeros(1, 3, requires_grad=True)
    soft_bce(logits, p).backward()
    # d/dz mean BCE = (sigmoid(z) - p) / labels
    torch.testing.assert_close(logits.grad, (0.5 - p) / 3)
    with pytest.raises(ValueError, match="does not match"):
        soft_bce(torch.zeros(2, 3), torch.zeros(2, 2))


def test_bce_objective_reads_the_teacher_probabilities() -> None:
    from tinystudent.students.base import StudentOutput
    from tinystudent.train.batch import TrainBatch

    obj = OBJECTIVES["bce"](OBJECTIVES["bce"].Config(weight=0.5), ObjectiveContext(3))
    logits, probs = torch.randn(4, 3), torch.rand(4, 3)
    batch = TrainBatch({}, torch.full((4,), -1), probs, None, lambda f: StudentOutput(logits))
    parts = obj(StudentOutput(logits), batch)
    torch.testing.assert_close(parts["bce"], 0.5 * soft_bce(logits, probs))


def test_threshold_is_the_best_f1_cut() -> None:
    y = np.array([1, 1, 0, 0, 0])
    p = np.array([0.35, 0.3, 0.25, 0.1, 0.05])
    # 0.275 and 0.3 both separate the classes (F1 = 1); a tie goes to the cut nearest 0.5
    assert best_threshold(y, p) == pytest.approx(0.3)
    assert best_threshold(y, p, grid=np.array([0.1, 0.275, 0.5])) == pytest.approx(0.275)
    both = choose_thresholds(np.stack([p, 1 - p], 1), np.stack([y, 1 - y], 1))
    assert both == [pytest.approx(0.3), pytest.approx(0.725)]


def test_metrics_micro_macro_and_subset() -> None:
    truth = np.array([[1, 0], [1, 1], [0, 1]])
    pred = decide(np.array([[0.9, 0.1], [0.8, 0.2], [0.1, 0.7]]), [0.5, 0.5])
    m = multilabel_metrics(truth, pred)
    assert m["subset_accuracy"] == pytest.approx(2 / 3)
    assert m["micro_f1"] == pytest.approx(2 * 3 / (2 * 3 + 0 + 1))
    assert m["macro_f1"] == pytest.approx((1.0 + 2 / 3) / 2)
