"""Head pose as a scaled rigid transform, and the frontal normalised landmark space.

Convention, used by every model and by 3D-aware alignment (paper eq. 8):

    image_points = s * R @ frontal_points + t      (x, y in pixels; z in pixels, depth)

and the 2D landmarks are the x, y of that (scaled orthographic projection).

**Frontal space** (one per face: its own canonical shape): origin at the centroid of the
rigid points, x along the eye line towards the image right, y down from the eyes towards
the mouth, z = x × y (into the image, away from the camera), unit = the distance between
the outer eye corners (iBUG 36 and 45).
"""

from dataclasses import dataclass

import numpy as np

from engine.face.landmarks68 import (
    LEFT_EYE_INNER,
    LEFT_EYE_OUTER,
    MOUTH_LEFT,
    MOUTH_RIGHT,
    RIGHT_EYE_INNER,
    RIGHT_EYE_OUTER,
)


@dataclass(frozen=True)
class Pose:
    """Per-frame head pose: (T, 3, 3) rotations, (T, 3) translations, (T,) scales."""

    rotation: np.ndarray
    translation: np.ndarray
    scale: np.ndarray

    def frame(self, index: int) -> "Pose":
        """The pose of one frame, as a pose of length 1."""
        span = slice(index, index + 1)
        return Pose(self.rotation[span], self.translation[span], self.scale[span])

    def apply(self, frontal: np.ndarray) -> np.ndarray:
        """(T, N, 3) frontal points -> (T, N, 3) image points."""
        return (
            self.scale[:, None, None] * np.einsum("tij,tnj->tni", self.rotation, frontal)
            + self.translation[:, None, :]
        )

    def remove(self, image_points: np.ndarray) -> np.ndarray:
        """(T, N, 3) image points -> (T, N, 3) frontal points."""
        centred = image_points - self.translation[:, None, :]
        return np.einsum("tji,tnj->tni", self.rotation, centred) / self.scale[:, None, None]


def similarity_fit(source: np.ndarray, target: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
    """Least-squares s, R, t with target ≈ s R source + t (Umeyama 1991).

    source, target: (N, 3) corresponding points, N >= 3. R is a proper rotation.
    """
    mu_s, mu_t = source.mean(axis=0), target.mean(axis=0)
    src, tgt = source - mu_s, target - mu_t
    covariance = tgt.T @ src / len(source)
    u, singular, vt = np.linalg.svd(covariance)
    sign = np.ones(3)
    if np.linalg.det(u) * np.linalg.det(vt) < 0:
        sign[-1] = -1.0
    rotation = u @ np.diag(sign) @ vt
    variance = (src**2).sum() / len(source)
    scale = float((singular * sign).sum() / variance)
    translation = mu_t - scale * rotation @ mu_s
    return rotation, translation, scale


def frontal_frame(shape478: np.ndarray, landmarks68: np.ndarray, rigid: np.ndarray) -> np.ndarray:
    """Bring a face shape into frontal space (see module docstring).

    shape478: (478, 3) points of one face; landmarks68: (68, 3) its iBUG subset;
    rigid: indices into shape478 whose centroid becomes the origin. Returns (478, 3).
    """
    right_eye = landmarks68[[RIGHT_EYE_OUTER, RIGHT_EYE_INNER]].mean(axis=0)
    left_eye = landmarks68[[LEFT_EYE_INNER, LEFT_EYE_OUTER]].mean(axis=0)
    mouth = landmarks68[[MOUTH_LEFT, MOUTH_RIGHT]].mean(axis=0)
    x = left_eye - right_eye
    x /= np.linalg.norm(x)
    down = mouth - (left_eye + right_eye) / 2
    y = down - (down @ x) * x
    y /= np.linalg.norm(y)
    z = np.cross(x, y)
    axes = np.stack([x, y, z])  # rows: the frontal axes in the input's coordinates
    unit = np.linalg.norm(landmarks68[LEFT_EYE_OUTER] - landmarks68[RIGHT_EYE_OUTER])
    return (shape478 - shape478[rigid].mean(axis=0)) @ axes.T / unit


def rotation_angles(rotation: np.ndarray) -> np.ndarray:
    """(..., 3, 3) -> (..., 3) yaw, pitch, roll in degrees (R = Rz(roll) Ry(yaw) Rx(pitch))."""
    yaw = np.degrees(np.arcsin(np.clip(-rotation[..., 2, 0], -1, 1)))
    pitch = np.degrees(np.arctan2(rotation[..., 2, 1], rotation[..., 2, 2]))
    roll = np.degrees(np.arctan2(rotation[..., 1, 0], rotation[..., 0, 0]))
    return np.stack([yaw, pitch, roll], axis=-1)
