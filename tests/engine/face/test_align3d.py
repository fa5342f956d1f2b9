import numpy as np

from engine.face.align3d import align_3d, alignment_errors, paste_2d
from engine.face.pose import Pose


def _pose(yaw_degrees: float, frames: int = 3) -> Pose:
    a = np.radians(yaw_degrees)
    rotation = np.array([[np.cos(a), 0, np.sin(a)], [0, 1, 0], [-np.sin(a), 0, np.cos(a)]])
    return Pose(
        np.repeat(rotation[None], frames, axis=0),
        np.tile([[320.0, 240.0, 0.0]], (frames, 1)),
        np.full(frames, 100.0),
    )


def test_3d_alignment_is_exact_when_the_depth_is_the_face_s_own():
    rng = np.random.default_rng(0)
    face = rng.uniform(-1, 1, (68, 3))
    pose = _pose(30.0)
    image = pose.apply(np.repeat(face[None], 3, axis=0))[..., :2]
    frontal = np.repeat(face[None, :, :2], 3, axis=0)
    np.testing.assert_allclose(align_3d(frontal, face[:, 2], pose), image, atol=1e-9)
    errors = alignment_errors(image, frontal, face[:, 2], pose)
    assert errors["3d"]["pixels"] < 1e-6 < errors["2d"]["pixels"]


def test_frontal_faces_paste_the_same_either_way():
    rng = np.random.default_rng(1)
    face = rng.uniform(-1, 1, (68, 3))
    pose = _pose(0.0)
    frontal = np.repeat(face[None, :, :2], 3, axis=0)
    np.testing.assert_allclose(
        align_3d(frontal, face[:, 2], pose), paste_2d(frontal, pose), atol=1e-9
    )


def test_on_a_real_clip_3d_beats_2d_pasting(shared_data):
    from engine.face.landmarks68 import to_ibug68
    from engine.face.tracking import track_video

    track = track_video(shared_data / "talking" / "sadtalker_WDA_KatieHill_000.mp4")
    valid = track.valid
    pose = Pose(track.rotation[valid], track.translation[valid], track.scale[valid])
    errors = alignment_errors(
        track.landmarks68[valid][..., :2],
        track.frontal68[valid][..., :2],
        to_ibug68(track.reference)[:, 2],
        pose,
    )
    assert errors["3d"]["pixels"] < 0.7 * errors["2d"]["pixels"]


def test_alignment_evaluation_command_on_the_real_clips(shared_data):
    from engine.face.align3d import evaluate_alignment

    result = evaluate_alignment(shared_data / "talking")
    assert result["clips"] == 5
    assert result["3d"]["pixels"] < 0.25 * result["2d"]["pixels"]
    assert result["3d"]["contour_pixels"] < result["2d"]["contour_pixels"]
