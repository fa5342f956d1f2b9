"""Temperature scaling: it finds the temperature that made the labels, and makes an
overconfident classifier's confidence match its accuracy."""

import numpy as np
import pytest

from engine.model.calibration import expected_calibration_error, fit_temperature, softmax


def sampled(temperature: float, n: int = 4000, classes: int = 7, seed: int = 0):
    """Logits and labels drawn from softmax(logits / temperature): a model whose
    probabilities are calibrated at that temperature."""
    rng = np.random.default_rng(seed)
    logits = rng.normal(0, 3, size=(n, classes))
    p = softmax(logits, temperature)
    truth = np.array([rng.choice(classes, p=row) for row in p])
    return logits, truth


def test_the_fitted_temperature_is_the_one_that_made_the_labels():
    for true_t in (0.5, 1.0, 3.7):
        logits, truth = sampled(true_t)
        assert fit_temperature(logits, truth) == pytest.approx(true_t, rel=0.1)


def test_scaling_turns_an_overconfident_classifier_calibrated():
    logits, truth = sampled(4.0)
    before = expected_calibration_error(softmax(logits), truth)
    after = expected_calibration_error(softmax(logits, fit_temperature(logits, truth)), truth)
    assert before > 0.2
    assert after < 0.05
    # the ranking, so the accuracy, does not change
    assert np.array_equal(softmax(logits).argmax(1), softmax(logits, 4.0).argmax(1))
