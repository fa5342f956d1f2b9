"""The avatar's stable face crop and its smoothed head pose (avatar build steps).

stable_crop(landmarks, frame_size)   one square box that holds the face in every frame,
                                     with a margin for hair and chin, inside the frame
smooth_pose(pose, sigma_frames)      Gaussian smoothing over time of scale, translation
                                     and rotation (rotations averaged, then projected
                                     back to proper rotations), so the posed landmarks
                                     do not shake with the tracker's noise
"""

from dataclasses import dataclass

import numpy as np

from engine.face.pose import Pose

CROP_MARGIN = 0.6  # of the face's size, added around it (hair above, neck below)


@dataclass(frozen=True)
class CropBox:
    x: int
    y: int
    size: int  # square side, pixels

    def apply(self, points: np.ndarray, output: int) -> np.ndarray:
        """(..., 2) frame pixels -> pixels of the crop resized to output x output."""
        return (np.asarray(points) - [self.x, self.y]) * (output / self.size)


def stable_crop(
    landmarks: np.ndarray, frame_size: tuple[int, int], margin: float = CROP_MARGIN
) -> CropBox:
    """(T, 68, 2) image landmarks (NaN where untracked) and (height, width) -> CropBox."""
    points = np.asarray(landmarks, dtype=np.float64).reshape(-1, 2)
    points = points[np.isfinite(points).all(axis=1)]
    if not len(points):
        raise ValueError("no tracked face in any frame: nothing to crop")
    low, high = points.min(axis=0), points.max(axis=0)
    centre = (low + high) / 2
    side = (high - low).max() * (1 + margin)
    height, width = frame_size
    side = min(side, height, width)
    x = int(np.clip(round(centre[0] - side / 2), 0, width - side))
    y = int(np.clip(round(centre[1] - side / 2), 0, height - side))
    return CropBox(x, y, int(side))


def _gaussian_smooth(values: np.ndarray, sigma: float) -> np.ndarray:
    """Along axis 0, edges reflected."""
    if sigma <= 0 or len(values) < 2:
        return values.copy()
    radius = int(3 * sigma)
    kernel = np.exp(-0.5 * (np.arange(-radius, radius + 1) / sigma) ** 2)
    kernel /= kernel.sum()
    padded = np.pad(values, [(radius, radius)] + [(0, 0)] * (values.ndim - 1), mode="reflect")
    flat = padded.reshape(len(padded), -1)
    out = np.stack([np.convolve(flat[:, j], kernel, mode="valid") for j in range(flat.shape[1])], 1)
    return out.reshape(values.shape)


def _nearest_rotation(matrices: np.ndarray) -> np.ndarray:
    u, _, vt = np.linalg.svd(matrices)
    sign = np.sign(np.linalg.det(u @ vt))
    u[..., :, -1] *= sign[..., None]
    return u @ vt


def smooth_pose(pose: Pose, sigma_frames: float = 1.5) -> Pose:
    """Temporal Gaussian smoothing of every pose component (all frames must be tracked)."""
    if not (np.isfinite(pose.rotation).all() and np.isfinite(pose.scale).all()):
        raise ValueError("smooth_pose needs a pose in every frame; interpolate gaps first")
    rotation = _nearest_rotation(_gaussian_smooth(pose.rotation, sigma_frames))
    return Pose(
        rotation,
        _gaussian_smooth(pose.translation, sigma_frames),
        _gaussian_smooth(pose.scale, sigma_frames),
    )
