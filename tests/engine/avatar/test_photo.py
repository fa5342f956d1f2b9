import numpy as np
import pytest

from engine.avatar.photo import blink, idle_loop, mouth_frames, open_mouth, warp_face


@pytest.fixture(scope="module")
def astronaut():
    from skimage import data

    from engine.face.tracking import track_image

    image = data.astronaut()
    return image, track_image(image).landmarks68[0, :, :2].astype(np.float64)


def test_warping_to_the_same_points_changes_nothing(astronaut):
    image, face = astronaut
    assert np.array_equal(warp_face(image, face, face), image)


def test_a_blink_closes_the_eyes_and_the_tracker_sees_it(astronaut):
    from engine.face.tracking import track_image

    image, face = astronaut
    shut = warp_face(image, face, blink(face, 1.0))
    seen = track_image(shut).landmarks68[0, :, :2]
    opening = lambda f: np.mean([f[41, 1] - f[37, 1], f[47, 1] - f[43, 1]])
    assert opening(seen) < 0.6 * opening(face)
    changed = np.nonzero(np.any(shut != image, axis=2))[0]  # rows
    brows, lower_lids = face[17:27, 1].min(), face[[40, 41, 46, 47], 1].max()
    assert brows - 2 <= changed.min() and changed.max() <= lower_lids + 2  # only the eyes move


def test_an_opened_mouth_is_tracked_open(astronaut):
    from engine.face.tracking import track_image

    image, face = astronaut
    frames = mouth_frames(image, face, count=8)
    assert frames.shape == (8, *image.shape)
    gap = lambda f: f[66, 1] - f[62, 1]
    widest = track_image(frames[4]).landmarks68[0, :, :2]
    assert gap(widest) > gap(face) + 5  # pixels
    assert gap(open_mouth(face, 1.0)) > gap(face)


def test_the_idle_loop_moves_gently_and_starts_at_the_photo(astronaut):
    image, face = astronaut
    loop = idle_loop(image, face, frames=20)
    assert loop.shape == (20, *image.shape)
    step = np.abs(np.diff(loop.astype(np.int16), axis=0)).mean(axis=(1, 2, 3))
    assert step.max() < 12 and step.min() > 0  # always moving, never jumping
    assert np.abs(loop[0].astype(int) - image).mean() < 3
