import numpy as np
import pytest

from engine.avatar.crop import smooth_pose, stable_crop
from engine.face.pose import Pose, rotation_angles


def _yaw(degrees: np.ndarray) -> np.ndarray:
    a = np.radians(degrees)
    c, s, z, o = np.cos(a), np.sin(a), np.zeros_like(a), np.ones_like(a)
    return np.stack(
        [np.stack([c, z, s], -1), np.stack([z, o, z], -1), np.stack([-s, z, c], -1)], -2
    )


def test_crop_holds_every_frame_s_face_inside_the_frame():
    rng = np.random.default_rng(0)
    faces = rng.uniform(0, 100, (50, 68, 2)) + np.linspace(200, 260, 50)[:, None, None]
    faces[7] = np.nan  # an untracked frame
    box = stable_crop(faces, (480, 640))
    tracked = faces[np.isfinite(faces).all(axis=(1, 2))]
    assert box.x <= tracked[..., 0].min() and tracked[..., 0].max() <= box.x + box.size
    assert box.y <= tracked[..., 1].min() and tracked[..., 1].max() <= box.y + box.size
    assert 0 <= box.x and box.x + box.size <= 640 and 0 <= box.y and box.y + box.size <= 480
    np.testing.assert_allclose(box.apply([[box.x, box.y]], 256), [[0, 0]])
    with pytest.raises(ValueError, match="no tracked face"):
        stable_crop(np.full((3, 68, 2), np.nan), (480, 640))


def test_smoothing_removes_tracker_jitter_but_keeps_the_motion():
    frames = 200
    truth = 20 * np.sin(np.linspace(0, 2 * np.pi, frames))  # a slow head turn, degrees
    noisy = truth + np.random.default_rng(1).normal(0, 1.5, frames)
    pose = Pose(_yaw(noisy), np.zeros((frames, 3)), np.full(frames, 100.0))
    smoothed = smooth_pose(pose, sigma_frames=2.0)
    yaw = rotation_angles(smoothed.rotation)[:, 0]
    assert np.abs(yaw - truth).mean() < 0.5 * np.abs(noisy - truth).mean()
    assert np.allclose(np.linalg.det(smoothed.rotation), 1) and np.allclose(
        smoothed.rotation @ smoothed.rotation.transpose(0, 2, 1), np.eye(3), atol=1e-9
    )
