import numpy as np
import pytest

from engine.avatar.photo import (
    blink,
    express,
    idle_loop,
    motion_frames,
    open_mouth,
    pose_face,
    rest_face,
    warp_face,
)


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


def gap(face):
    """The inner-lip opening in IOD."""
    return (face[66, 1] - face[62, 1]) / np.linalg.norm(face[45] - face[36])


def test_the_rest_face_closes_a_smile_with_teeth_and_the_tracker_sees_it(astronaut):
    from engine.face.tracking import track_image

    image, face = astronaut  # Eileen Collins smiles with her teeth showing
    rest = rest_face(face)
    assert gap(face) > 0.1
    assert gap(rest) < 0.03
    assert np.linalg.norm(rest[54] - rest[48]) < 0.93 * np.linalg.norm(face[54] - face[48])
    assert np.array_equal(rest[:48], face[:48])  # only the mouth moves
    closed = pose_face(image, face, rest)
    seen = track_image(closed).landmarks68[0, :, :2]
    assert gap(seen) < 0.65 * gap(face)
    # no teeth left between the lips: nothing in the mouth as bright as the photo's teeth
    x0, y0 = np.floor(seen[48:60].min(axis=0)).astype(int)
    x1, y1 = np.ceil(seen[48:60].max(axis=0)).astype(int)
    teeth = image[y0:y1, x0:x1].sum(axis=2) > 3 * 230
    assert teeth.sum() > 20 and (closed[y0:y1, x0:x1].sum(axis=2) > 3 * 230).sum() < 3


def test_opened_mouths_span_rest_to_wide_and_the_tracker_sees_it(astronaut):
    from engine.face.tracking import track_image

    image, face = astronaut
    frames = motion_frames(image, face, count=16)  # openings 0.38, 0.92, ... then expressions
    assert frames.shape == (16, *image.shape)
    seen = [gap(track_image(f).landmarks68[0, :, :2]) for f in frames[[0, 2]]]
    assert seen[1] > seen[0] + 0.1
    rest = rest_face(face)
    assert gap(open_mouth(rest, 1.0)) > gap(open_mouth(rest, 0.5)) > gap(rest)
    width = lambda f: f[54, 0] - f[48, 0]
    assert (
        width(open_mouth(rest, 0.5, 1.0))
        > width(open_mouth(rest, 0.5))
        > width(open_mouth(rest, 0.5, -1.0))
    )


def test_the_idle_loop_moves_gently_and_starts_at_the_photo_at_rest(astronaut):
    image, face = astronaut
    loop = idle_loop(image, face, frames=20)
    assert loop.shape == (20, *image.shape)
    step = np.abs(np.diff(loop.astype(np.int16), axis=0)).mean(axis=(1, 2, 3))
    assert step.max() < 12 and step.min() > 0  # always moving, never jumping
    assert np.abs(loop[0].astype(int) - image).mean() < 3


def test_expressions_move_brows_eyes_and_corners_as_asked_and_the_tracker_sees_it(astronaut):
    from engine.face.tracking import track_image
    from engine.targets.expressions import FEATURES, expression_features

    image, face = astronaut
    rest = rest_face(face)
    seen = lambda shape: expression_features(
        track_image(pose_face(image, face, shape)).landmarks68[0, :, :2]
    )
    base = seen(rest)
    assert np.array_equal(express(rest), rest)
    change = {
        asked: dict(zip(FEATURES, seen(express(rest, **{asked: sign})) - base, strict=True))
        for asked, sign in [("inner_brows", 1), ("eyes", 1), ("corners", 1)]
    }
    assert change["inner_brows"]["inner_brows_up"] > 0.03  # IOD
    assert change["eyes"]["eyes_open"] > 0.015
    assert change["corners"]["corners_up"] > 0.03
    down = seen(express(rest, corners=-1)) - base
    assert down[FEATURES.index("corners_up")] < -0.03
    for asked, moved in change.items():  # each moves its own part most
        assert abs(moved["mouth_width"]) < 0.02 and abs(moved["jaw_down"]) < 0.02, asked
