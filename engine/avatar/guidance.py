"""Guidance maps for the generator (EVP §3.3): a face sketch on the frame's own edges.

    sketch(landmarks, size)          (5, H, W) uint8: one channel per part (jaw, brows,
                                     nose, eyes, lips), the landmarks joined by lines
    face_mask(landmarks, size)       (H, W) bool: inside the face outline (jaw + brows)
    outside_edges(frame, landmarks)  (H, W) uint8: Canny edges of the frame with the face
                                     region removed (hair, clothes, background stay)
    guidance(frame, landmarks)       (6, H, W) uint8: sketch channels then outside edges

Landmarks are iBUG-68 image points (68, 2) in pixels of the same frame.
"""

import cv2
import numpy as np

from engine.constants import BROWS, JAW

#: (part name, polylines as index ranges, closed?) in channel order.
PARTS = (
    ("jaw", [range(JAW.start, JAW.stop)], False),
    ("brows", [range(17, 22), range(22, 27)], False),
    ("nose", [range(27, 31), range(31, 36)], False),
    ("eyes", [range(36, 42), range(42, 48)], True),
    ("lips", [range(48, 60), range(60, 68)], True),
)
CANNY_LOW, CANNY_HIGH = 80, 160
MASK_MARGIN = 0.08  # of the face width: the mask reaches a little past the outline


def _check(landmarks: np.ndarray) -> np.ndarray:
    points = np.asarray(landmarks, dtype=np.float64)
    if points.shape != (68, 2) or not np.isfinite(points).all():
        raise ValueError(f"landmarks must be finite (68, 2) image points, got {points.shape}")
    return points


def sketch(landmarks: np.ndarray, size: tuple[int, int], thickness: int = 2) -> np.ndarray:
    """(68, 2) points -> (5, H, W) uint8 line drawings, 255 on the lines."""
    points = _check(landmarks)
    height, width = size
    channels = np.zeros((len(PARTS), height, width), np.uint8)
    shift = 4  # sub-pixel line positions
    fixed = np.round(points * (1 << shift)).astype(np.int32)
    for channel, (_, lines, closed) in zip(channels, PARTS, strict=True):
        for line in lines:
            # cv2's stubs want a sequence for the colour; a number is the documented Scalar(n)
            cv2.polylines(channel, [fixed[list(line)]], closed, 255, thickness, cv2.LINE_AA, shift)  # type: ignore[call-overload]
    return channels


def face_mask(landmarks: np.ndarray, size: tuple[int, ...]) -> np.ndarray:
    """(H, W) bool: the convex hull of jaw and brows, grown by MASK_MARGIN."""
    points = _check(landmarks)
    outline = points[list(JAW) + list(BROWS)]
    centre = outline.mean(axis=0)
    width = np.ptp(points[:, 0])
    grown = centre + (outline - centre) * (
        1 + MASK_MARGIN * width / max(np.ptp(outline[:, 0]), 1e-6)
    )
    mask = np.zeros(size, np.uint8)
    # cv2's stubs want a sequence for the colour; a number is the documented Scalar(n)
    cv2.fillConvexPoly(mask, cv2.convexHull(np.round(grown).astype(np.int32)), 1)  # type: ignore[call-overload]
    return mask.astype(bool)


def outside_edges(frame: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
    """(H, W, 3) uint8 RGB frame -> (H, W) uint8 Canny edges outside the face."""
    grey = cv2.cvtColor(np.ascontiguousarray(frame), cv2.COLOR_RGB2GRAY)
    edges = cv2.Canny(cv2.GaussianBlur(grey, (5, 5), 0), CANNY_LOW, CANNY_HIGH)
    edges[face_mask(landmarks, grey.shape)] = 0
    return edges


def guidance(frame: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
    """(H, W, 3) frame and its (68, 2) landmarks -> (6, H, W) uint8 guidance channels."""
    height, width = frame.shape[:2]
    return np.concatenate(
        [sketch(landmarks, (height, width)), outside_edges(frame, landmarks)[None]]
    )
