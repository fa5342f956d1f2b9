import numpy as np
import pytest

from engine.speech.align import PhoneSegment
from engine.targets.visemes import (
    VISEMES,
    VisemeModel,
    dominance_weights,
    frame_times,
    landmark_distances,
    viseme_of,
)


def phones_of(sequence, rng):
    t, out = 0.0, []
    for phone in sequence:
        duration = rng.uniform(0.05, 0.15)
        out.append(PhoneSegment(phone, t, t + duration))
        t += duration
    return out


def test_phone_map_and_weights():
    assert viseme_of("AA1") == "open" and viseme_of("m") == "bilabial" and viseme_of("??") == "rest"
    phones = [
        PhoneSegment("SIL", 0, 0.2),
        PhoneSegment("M", 0.2, 0.28),
        PhoneSegment("AA", 0.28, 0.5),
    ]
    weights = dominance_weights(phones, frame_times(20))
    np.testing.assert_allclose(weights.sum(axis=1), 1.0)
    at_m = weights[int(0.24 * 25)]
    assert np.argmax(at_m) == VISEMES.index("bilabial")  # the strong viseme wins its phone


def test_fit_recovers_targets_through_the_blending():
    rng = np.random.default_rng(0)
    truth = rng.normal(0, 0.03, (len(VISEMES), 20, 2))
    truth[VISEMES.index("rest")] = 0
    model = VisemeModel(truth)
    vocabulary = ["SIL", "P", "F", "TH", "T", "S", "SH", "K", "R", "UW", "AA", "EH", "IY", "ER"]
    examples = []
    for _ in range(6):
        phones = phones_of(rng.choice(vocabulary, 60), rng)
        times = frame_times(int(phones[-1].end * 25))
        mouth = model.mouth(phones, times, np.zeros((20, 2))) + rng.normal(
            0, 0.001, (len(times), 20, 2)
        )
        examples.append((phones, times, mouth))
    fitted = VisemeModel.fit(examples, ridge=1e-6)
    np.testing.assert_allclose(fitted.targets, truth, atol=0.01)


def test_landmark_distances():
    a = np.zeros((3, 4, 2))
    b = a + np.array([1.0, 0.0])  # a pure shift vanishes after mean-centring
    assert landmark_distances(a, b) == (0.0, 0.0)
    c = a.copy()
    c[1, 0] = [1.0, 0.0]
    ld, lvd = landmark_distances(a, c)
    assert ld == pytest.approx((0.75 + 3 * 0.25) / 12) and lvd > 0
