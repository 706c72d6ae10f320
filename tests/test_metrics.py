"""The report's metrics: expected calibration error as Guo et al. define it."""

from __future__ import annotations

import numpy as np
import pytest

from tinystudent.evaluate import classification_metrics
from tinystudent.evaluate.metrics import expected_calibration_error


def test_ece_of_a_calibrated_and_an_overconfident_predictor() -> None:
    # 10 texts at confidence 0.8, 8 of them right: calibrated in its one bin
    probs = np.array([[0.8, 0.2]] * 10)
    labels = [0] * 8 + [1] * 2
    assert expected_calibration_error(labels, probs) == pytest.approx(0.0)
    # the same answers at confidence 0.99: 0.19 too sure
    sure = np.array([[0.99, 0.01]] * 10)
    assert expected_calibration_error(labels, sure) == pytest.approx(0.19)


def test_ece_weights_bins_by_their_share_of_texts() -> None:
    probs = np.array([[0.95, 0.05]] * 3 + [[0.55, 0.45]])  # bins 14 and 8
    labels = [0, 0, 0, 1]  # bin 14: acc 1.0 vs 0.95; bin 8: acc 0.0 vs 0.55
    want = 0.75 * 0.05 + 0.25 * 0.55
    assert expected_calibration_error(labels, probs) == pytest.approx(want)


def test_confidence_one_lands_in_the_last_bin_and_metrics_carry_ece() -> None:
    probs = np.array([[1.0, 0.0], [0.0, 1.0]])
    assert expected_calibration_error([0, 1], probs) == pytest.approx(0.0)
    m = classification_metrics([0, 0], probs)
    assert m["accuracy"] == 0.5 and m["ece"] == pytest.approx(0.5)
