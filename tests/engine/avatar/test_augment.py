"""Framing a video like a call, and the expression frames a calm clip never shows."""

import numpy as np
import pytest

from engine.avatar.augment import Window, call_framing, expression_frames, face_height
from engine.errors import AvatarError


@pytest.fixture(scope="module")
def face():
    from engine.model.checkpoint import load_checkpoint

    canonical = load_checkpoint().canonical.numpy().astype(np.float64)  # (68, 2), IOD ~ 1
    return (canonical - canonical.mean(axis=0)) * 60 + [180, 140]  # a 360x288 frame's face


def test_framing_fills_the_share_asked_at_the_source_resolution(face):
    track = np.repeat(face[None], 10, axis=0) + np.linspace(-3, 3, 10)[:, None, None]
    window = call_framing((288, 360), track, 0.45)
    height = float(np.median(face_height(track)))
    assert height / window.size == pytest.approx(0.45, abs=0.01)
    assert window.size % 2 == 0 and window.size <= 288
    assert 0 <= window.x <= 360 - window.size and 0 <= window.y <= 288 - window.size
    inside = track - [window.x, window.y]
    assert inside.min() >= 0 and inside.max() <= window.size  # the whole face, every frame
    eyes = inside[:, 36:48, 1].mean()
    assert 0.3 < eyes / window.size < 0.5  # eyes a little above the middle
    frames = np.zeros((10, 288, 360, 3), np.uint8)
    assert window.crop(frames).shape == (10, window.size, window.size, 3)


def test_framing_never_upscales_and_refuses_what_cannot_hold_the_face(face):
    whole = call_framing((288, 360), face[None], 0.2)  # asks for more than the frame has
    assert whole.size == 288
    with pytest.raises(AvatarError, match="--face-share must be between"):
        call_framing((288, 360), face[None], 0.95)
    wandering = np.stack([face, face + [150, 0]])  # the face crosses the frame
    with pytest.raises(AvatarError, match="moves over"):
        call_framing((288, 360), wandering, 0.6)
    assert Window(1, 2, 4).crop(np.arange(5 * 6 * 7 * 3).reshape(5, 6, 7, 3)).shape == (5, 4, 4, 3)


def test_expression_frames_move_the_face_and_nothing_far_from_it(shared_data):
    from engine.avatar.source import read_source
    from engine.face.tracking import track_frames
    from engine.targets.expressions import expression_features

    clip = read_source(shared_data / "talking2" / "lipnet_input_video.mp4", 2.0)
    frames = clip.frames[:10]
    track = track_frames(((i / 25, f) for i, f in enumerate(frames)), static_images=False)
    landmarks = track.landmarks68[:, :, :2].astype(np.float64)
    warped = expression_frames(frames, landmarks, 6, seed=1)
    assert warped.shape == (6, *frames.shape[1:]) and warped.dtype == np.uint8
    again = expression_frames(frames, landmarks, 6, seed=1)
    assert np.array_equal(warped, again)  # seeded: a rebuild is the same
    seen = track_frames(((i / 25, f) for i, f in enumerate(warped)), static_images=True)
    picks = np.linspace(0, 9, 6).round().astype(int)
    change = expression_features(seen.frontal68[:, :, :2]) - expression_features(
        track.frontal68[picks, :, :2]
    )
    # brows (inner, outer) and eyes move by several hundredths of the eye distance
    assert np.abs(change[:, 4:7]).max(axis=1).min() > 0.02
    for frame, before, face in zip(warped, frames[picks], landmarks[picks], strict=True):
        # only inside the warp's fixed ring, 1.6x the face's extent around its centre
        centre, reach = face.mean(axis=0), 1.6 * np.abs(face - face.mean(axis=0)).max(axis=0)
        ys, xs = np.nonzero(np.any(frame != before, axis=2))
        assert (np.abs(ys - centre[1]) <= reach[1] + 2).all()
        assert (np.abs(xs - centre[0]) <= reach[0] + 2).all()


def test_the_emotion_shapes_are_what_the_shipped_model_draws():
    from engine.avatar.augment import emotion_shapes
    from engine.model.checkpoint import load_checkpoint
    from engine.targets.expressions import FEATURES, expression_features

    face = load_checkpoint().canonical.numpy().astype(np.float64)
    iod = np.linalg.norm(face[45] - face[36])
    shapes = emotion_shapes()
    assert "neutral" not in shapes and {"happy", "sad", "surprised"} <= set(shapes)
    moved = {
        e: dict(zip(FEATURES, expression_features(face + iod * s) - expression_features(face)))
        for e, s in shapes.items()
    }
    assert moved["happy"]["corners_up"] > 0.007 and moved["happy"]["mouth_width"] > 0.05
    assert moved["sad"]["corners_up"] < -0.007 and moved["sad"]["eyes_open"] < -0.03
    assert moved["surprised"]["inner_brows_up"] > 0.02


def test_a_shape_turns_and_scales_with_the_face_it_is_drawn_on(face):
    from engine.avatar.augment import _in_frame

    shape = np.zeros((68, 2))
    shape[48] = [0.0, -0.1]  # the right mouth corner up by a tenth of the eye distance
    turned = face @ np.array([[0.0, 1.0], [-1.0, 0.0]])  # rolled a quarter turn
    iod = np.linalg.norm(face[45] - face[36])
    assert _in_frame(shape, face)[48] == pytest.approx([0.0, -0.1 * iod], abs=1e-2)
    eye_line = (turned[45] - turned[36]) / iod
    up = np.array([eye_line[1], -eye_line[0]])  # the face's own "up", a quarter turn away
    assert _in_frame(shape, turned)[48] == pytest.approx(0.1 * iod * up, abs=1e-2)
