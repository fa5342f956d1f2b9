"""Avatars from one photo: a synthesised idle loop and training frames with a moving mouth.

A photo has no motion to learn from, so the build makes some by warping the photo with
its own landmarks (piecewise-affine over a Delaunay triangulation, anchored at the image
border so only the face moves):

    idle_loop(image, face68, frames)    (T, H, W, 3) the loop: a slow head sway and nod,
                                        breathing zoom and two blinks, mouth closed
    mouth_frames(image, face68, count)  (count, H, W, 3) training-only frames with the jaw
                                        and lips opened by growing amounts, the mouth's
                                        inside filled dark, so the generator has seen
                                        open mouths before the audio asks for them
    warp_face(image, src68, dst68)      the warp both use

face68: (68, 2) iBUG landmarks in image pixels.
"""

import cv2
import numpy as np

from engine.constants import JAW

UPPER_LIDS = ((37, 41), (38, 40), (43, 47), (44, 46))  # (upper, lower) eyelid pairs
INNER_MOUTH = list(range(60, 68))
LOWER_LIP = [54, 55, 56, 57, 58, 59, 48] + [64, 65, 66, 67]
CHIN = list(range(4, 13))  # jaw points that drop with the chin
MOUTH_DARK = (52, 24, 28)  # RGB of the mouth's inside


def _anchors(width: int, height: int, face: np.ndarray) -> np.ndarray:
    """Fixed points: the image border and a ring well outside the face."""
    border = [(x, y) for x in np.linspace(0, width - 1, 5) for y in (0, height - 1)]
    border += [(x, y) for y in np.linspace(0, height - 1, 5)[1:-1] for x in (0, width - 1)]
    centre = face.mean(axis=0)
    radius = 1.6 * np.abs(face - centre).max(axis=0)
    angles = np.linspace(0, 2 * np.pi, 16, endpoint=False)
    ring = centre + np.stack([np.cos(angles), np.sin(angles)], 1) * radius
    ring = np.clip(ring, 0, [width - 1, height - 1])
    return np.concatenate([np.array(border, dtype=np.float64), ring])


def warp_face(image: np.ndarray, src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Move the (68, 2) points src to dst, carrying the pixels along (piecewise affine)."""
    height, width = image.shape[:2]
    anchors = _anchors(width, height, src)
    src_all = np.concatenate([src, anchors]).astype(np.float32)
    dst_all = np.concatenate([dst, anchors]).astype(np.float32)
    subdiv = cv2.Subdiv2D((0, 0, width, height))
    for x, y in dst_all:
        subdiv.insert((float(np.clip(x, 0, width - 1)), float(np.clip(y, 0, height - 1))))
    out = image.copy()
    lookup = {(round(float(x), 2), round(float(y), 2)): i for i, (x, y) in enumerate(dst_all)}
    for tri in subdiv.getTriangleList().reshape(-1, 3, 2):
        keys = [(round(float(x), 2), round(float(y), 2)) for x, y in tri]
        if not all(k in lookup for k in keys):
            continue
        index = [lookup[k] for k in keys]
        d, s = dst_all[index], src_all[index]
        if np.allclose(d, s, atol=0.05):
            continue  # nothing moves here
        x0, y0 = np.floor(d.min(axis=0)).astype(int)
        x1, y1 = np.ceil(d.max(axis=0)).astype(int) + 1
        x0, y0, x1, y1 = max(x0, 0), max(y0, 0), min(x1, width), min(y1, height)
        if x1 <= x0 or y1 <= y0:
            continue
        matrix = cv2.getAffineTransform((d - [x0, y0]).astype(np.float32), s.astype(np.float32))
        patch = cv2.warpAffine(
            image,
            matrix,
            (x1 - x0, y1 - y0),
            flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
            borderMode=cv2.BORDER_REFLECT,
        )
        mask = np.zeros((y1 - y0, x1 - x0), np.uint8)
        cv2.fillConvexPoly(mask, np.round(d - [x0, y0]).astype(np.int32), 1)
        region = out[y0:y1, x0:x1]
        region[mask.astype(bool)] = patch[mask.astype(bool)]
    return out


def _eye_opening(face: np.ndarray) -> float:
    return float(np.mean([face[lo, 1] - face[up, 1] for up, lo in UPPER_LIDS]))


def blink(face: np.ndarray, closure: float) -> np.ndarray:
    """(68, 2) -> (68, 2) with the upper lids lowered by closure (0 open, 1 shut)."""
    moved = face.copy()
    for up, lo in UPPER_LIDS:
        moved[up] = face[up] + closure * 0.9 * (face[lo] - face[up])
    return moved


def open_mouth(face: np.ndarray, amount: float) -> np.ndarray:
    """(68, 2) -> (68, 2) with the jaw dropped by amount x 25 % of the eye distance."""
    iod = np.linalg.norm(face[45] - face[36])
    drop = amount * 0.25 * iod
    moved = face.copy()
    moved[LOWER_LIP, 1] += drop
    moved[CHIN, 1] += drop * np.sin(np.linspace(0.3, np.pi - 0.3, len(CHIN)))
    moved[[48, 54], 1] += 0.25 * drop
    moved[[48, 54], 0] += np.array([1, -1]) * 0.08 * drop  # corners come in a little
    return moved


def _fill_mouth(warped: np.ndarray, photo: np.ndarray, face: np.ndarray, moved: np.ndarray):
    """Dark inside the opened mouth; the photo's own teeth stay under the upper lip."""
    inner = np.zeros(warped.shape[:2], np.uint8)
    cv2.fillPoly(inner, [np.round(moved[INNER_MOUTH]).astype(np.int32)], 255)
    teeth = np.zeros_like(inner)
    cv2.fillPoly(teeth, [np.round(face[INNER_MOUTH]).astype(np.int32)], 255)
    teeth &= inner
    dark = cv2.GaussianBlur(inner & ~teeth, (0, 0), 1.2).astype(np.float32)[..., None] / 255
    keep = cv2.GaussianBlur(teeth, (0, 0), 1.0).astype(np.float32)[..., None] / 255
    out = warped * (1 - keep) + photo * keep
    return (out * (1 - dark) + np.array(MOUTH_DARK) * dark).astype(np.uint8)


def _head_motion(face: np.ndarray, phase: float, width: int, height: int) -> np.ndarray:
    """A similarity transform (2, 3) for loop phase 0..1: sway, nod and breathing zoom."""
    centre = face[list(range(JAW.start, JAW.stop))].mean(axis=0)
    angle = 1.5 * np.sin(2 * np.pi * phase)  # degrees of roll
    scale = 1.0 + 0.012 * (1 - np.cos(2 * np.pi * phase)) / 2
    matrix = cv2.getRotationMatrix2D((float(centre[0]), float(centre[1])), angle, scale)
    matrix[:, 2] += [
        0.006 * width * np.sin(2 * np.pi * phase),
        0.004 * height * np.sin(4 * np.pi * phase),
    ]
    return matrix


def idle_loop(image: np.ndarray, face: np.ndarray, frames: int = 100) -> np.ndarray:
    """(H, W, 3) photo and its (68, 2) landmarks -> (frames, H, W, 3) idle loop.

    The loop is played forward then backward, so one forward pass is half a period of
    the head motion; blinks at 30 % and 75 % of it.
    """
    height, width = image.shape[:2]
    closures = np.zeros(frames)
    profile = np.array([0.35, 0.8, 1.0, 0.7, 0.3])
    for centre in (int(frames * 0.3), int(frames * 0.75)):
        start = max(0, min(centre - 2, frames - len(profile)))
        closures[start : start + len(profile)] = profile[: frames - start]
    out = []
    for i in range(frames):
        warped = image if closures[i] == 0 else warp_face(image, face, blink(face, closures[i]))
        matrix = _head_motion(face, 0.5 * i / max(frames - 1, 1), width, height)
        out.append(
            cv2.warpAffine(
                warped,
                matrix,
                (width, height),
                flags=cv2.INTER_CUBIC,
                borderMode=cv2.BORDER_REFLECT,
            )
        )
    return np.stack(out)


def mouth_frames(image: np.ndarray, face: np.ndarray, count: int = 24) -> np.ndarray:
    """(count, H, W, 3) training frames: the mouth opened from 0 to 1 and back, with
    small head motion so the generator does not learn one fixed position."""
    height, width = image.shape[:2]
    out = []
    for i in range(count):
        amount = np.sin(np.pi * (i + 0.5) / count)
        moved = open_mouth(face, amount)
        frame = _fill_mouth(warp_face(image, face, moved), image, face, moved)
        matrix = _head_motion(face, i / count, width, height)
        out.append(
            cv2.warpAffine(
                frame, matrix, (width, height), flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REFLECT
            )
        )
    return np.stack(out)
