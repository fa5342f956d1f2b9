import numpy as np
import pytest

pytest.importorskip("mediapipe")

from engine.constants import BROWS, EMOTIONS
from engine.targets.expressions import estimate_offsets


@pytest.fixture(scope="module")
def offsets(shared_data, tmp_path_factory):
    return estimate_offsets(shared_data / "mead", cache_dir=tmp_path_factory.mktemp("tracks"))


def dy(offsets, emotion, points) -> float:
    return float(offsets.offsets[EMOTIONS.index(emotion)][points, 1].mean())


def test_mead_offsets_show_the_textbook_expressions(offsets):
    """y points down in frontal space; 0.01 is 1 % of the inter-ocular distance."""
    assert offsets.identities == 2
    assert np.all(offsets.offsets[EMOTIONS.index("neutral")] == 0)
    corners = [48, 54]
    brows = list(BROWS)
    assert dy(offsets, "happy", corners) < -0.02  # smile: mouth corners up
    assert dy(offsets, "sad", corners) > 0.01  # mouth corners down
    assert dy(offsets, "surprised", brows) < -0.02  # brows raised
    assert dy(offsets, "fear", brows) < -0.02
    assert dy(offsets, "angry", brows) > 0.01  # brows lowered
    assert dy(offsets, "surprised", [8]) > 0.02  # jaw dropped


def test_apply_scales_with_intensity(offsets):
    face = np.zeros((68, 3))
    half = offsets.apply(face, "happy", 0.5)
    full = offsets.apply(face, "happy", 1.0)
    np.testing.assert_allclose(full[:, :2], 2 * half[:, :2])
    np.testing.assert_array_equal(full[:, 2], 0)


def test_closing_takes_the_opening_out_and_keeps_the_corners_against_the_lips():
    from engine.constants import EMOTIONS, N_LANDMARKS
    from engine.targets.expressions import ExpressionOffsets, expression_features

    rng = np.random.default_rng(0)
    offsets = ExpressionOffsets(rng.normal(0, 0.05, (len(EMOTIONS), N_LANDMARKS, 2)), 1)
    closed = offsets.closed()
    face = np.zeros((N_LANDMARKS, 2))
    face[:, 0] = np.linspace(-1, 1, N_LANDMARKS)  # any face: the measures are differences
    face[[36, 45], 0] = [-1.0, 1.0]
    for k, emotion in enumerate(EMOTIONS):
        was, now = offsets.offsets[k], closed.offsets[k]
        if emotion == "surprised":  # its dropped jaw is the expression
            assert np.array_equal(now, was)
            continue
        assert now[66, 1] - now[62, 1] == pytest.approx(0.0, abs=1e-12)  # no opening
        corners_up = lambda o: expression_features(face + o)[0]
        assert corners_up(now) == pytest.approx(corners_up(was), abs=1e-9)
        still = [i for i in range(48) if not 5 <= i <= 11]  # all but the chin's rise
        assert np.array_equal(now[still], was[still])  # brows, eyes, nose, jaw sides
        assert (now[8, 1] - was[8, 1]) == pytest.approx(-(was[66, 1] - was[62, 1]) / 2)
