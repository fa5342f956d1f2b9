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
