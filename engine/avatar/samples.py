"""Generator samples: a frame's face crop, its guidance map and its feathered face mask.

Everything here is on the avatar's square crop at the generator size S (engine.avatar.crop):

    feathered_mask(landmarks, S)           (S, S) float32 in 0..1: the face mask grown a
                                           little and blurred, 1 over the whole face
    crop_sample(frame, landmarks, box, S)  CropSample of one frame: RGB crop (S, S, 3) uint8,
                                           guidance (6, S, S) uint8, mask (S, S) float32
    generator_input(sample)                (10, S, S) float32, engine.avatar.generator's layout

The same functions serve training (tracked landmarks of the frame itself) and rendering
(predicted landmarks posed like the target frame), so the two cannot drift apart.
"""

from dataclasses import dataclass

import cv2
import numpy as np

from engine.avatar.crop import CropBox
from engine.avatar.guidance import face_mask, outside_edges, sketch


def feathered_mask(landmarks: np.ndarray, size: int) -> np.ndarray:
    """(68, 2) crop-pixel landmarks -> (size, size) float32 mask, 1 inside the face."""
    hard: np.ndarray = face_mask(landmarks, (size, size)).astype(np.uint8)
    grow = max(3, size // 32) | 1
    hard = cv2.dilate(hard, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (grow, grow)))
    soft = cv2.GaussianBlur(hard.astype(np.float32), (0, 0), size / 96)
    return np.clip(soft, 0.0, 1.0, out=soft)


@dataclass(frozen=True)
class CropSample:
    rgb: np.ndarray  # (S, S, 3) uint8, the target frame's crop
    guidance: np.ndarray  # (6, S, S) uint8
    mask: np.ndarray  # (S, S) float32


def crop_image(frame: np.ndarray, box: CropBox, size: int) -> np.ndarray:
    """(H, W, 3) uint8 frame -> (size, size, 3) uint8 crop."""
    patch = frame[box.y : box.y + box.size, box.x : box.x + box.size]
    interpolation = cv2.INTER_AREA if box.size > size else cv2.INTER_CUBIC
    return cv2.resize(patch, (size, size), interpolation=interpolation)


def crop_sample(
    frame: np.ndarray,
    face: np.ndarray,
    box: CropBox,
    size: int,
    target_face: np.ndarray | None = None,
    edges: np.ndarray | None = None,
    target_mask: np.ndarray | None = None,
) -> CropSample:
    """One generator sample from a full frame.

    face: (68, 2) frame-pixel landmarks drawn into the sketch (tracked or predicted);
    target_face: the frame's own tracked landmarks when they differ from ``face`` (the
    mask then covers both, so nothing of the old face shows); edges: the frame's stored
    outside-face edges at the crop size, computed here when None; target_mask:
    ``feathered_mask`` of ``target_face`` on the crop when the caller keeps it (it depends
    on the frame alone).
    """
    rgb = crop_image(frame, box, size)
    drawn = box.apply(face, size)
    own = drawn if target_face is None else box.apply(target_face, size)
    mask = feathered_mask(drawn, size)
    if target_face is not None:
        own_mask = feathered_mask(own, size) if target_mask is None else target_mask
        mask = np.maximum(mask, own_mask)
    if edges is None:
        edges = outside_edges(rgb, own)
    edges = np.where(mask < 0.5, edges, 0).astype(np.uint8)  # nothing of the face's own edges
    guidance = np.concatenate([sketch(drawn, (size, size)), edges[None]])
    return CropSample(rgb, guidance, mask)


def generator_input(sample: CropSample) -> np.ndarray:
    """CropSample -> (10, S, S) float32 in the layout engine.avatar.generator documents.

    Written channel by channel into one array (no temporaries of the whole input: this
    runs once per live frame)."""
    n_guidance, size = sample.guidance.shape[0], sample.mask.shape[0]
    x = np.empty((n_guidance + 4, size, size), np.float32)
    np.multiply(sample.guidance, np.float32(1 / 255), out=x[:n_guidance])
    frame = x[n_guidance : n_guidance + 3]
    np.multiply(sample.rgb.transpose(2, 0, 1), np.float32(1 / 127.5), out=frame)
    frame -= np.float32(1)
    frame *= np.float32(1) - sample.mask
    x[-1] = sample.mask
    return x


def to_image(output: np.ndarray) -> np.ndarray:
    """(3, S, S) generator output in -1..1 -> (S, S, 3) uint8 RGB."""
    return np.clip((output.transpose(1, 2, 0) + 1.0) * 127.5 + 0.5, 0, 255).astype(np.uint8)
