"""Render an avatar frame from landmarks: guidance -> generator (ONNX Runtime) -> composite.

    renderer = FaceRenderer(avatar)
    frame = renderer.render(tick_or_index, face68)   (H, W, 3) uint8 RGB, full frame

face68 are (68, 2) image-pixel landmarks for the loop frame: its own tracked landmarks
(reconstruction, `evp eval avatar`) or predicted landmarks posed with the frame's pose
(engine.face.align3d, the live pipeline). The generator's crop output is resized to the
crop box and blended into the frame with the feathered face mask, so only the face
changes. Serving needs no torch: the generator runs from its ONNX file.

``render`` may be called from several threads at once (the server's render pool): the
generator runs under a lock unless its backend says calls may overlap
(``concurrent = True``: ONNX Runtime sessions; a CUDA graph's or a TensorRT context's
buffers may not).
"""

import threading
from contextlib import nullcontext
from dataclasses import dataclass

import cv2
import numpy as np

from engine.avatar.bundle import Avatar
from engine.avatar.samples import (
    CropSample,
    crop_sample,
    feathered_mask,
    generator_input,
    to_image,
)
from engine.errors import AvatarError
from engine.runtime.generator import OnnxGenerator

MASK_CACHE_BYTES = 64 * 2**20  # loop frames' own face masks, kept when they fit


@dataclass(frozen=True)
class Rendered:
    frame: np.ndarray  # (H, W, 3) uint8, the composited full frame
    crop: np.ndarray  # (S, S, 3) uint8, the generator's output
    sample: CropSample  # what the generator saw (and the target crop)


class FaceRenderer:
    def __init__(self, avatar: Avatar, generator=None) -> None:
        """generator: an engine.runtime.generator backend (default: ONNX Runtime)."""
        self.avatar = avatar
        self.box = avatar.manifest.crop_box
        self.generator = generator or OnnxGenerator(avatar.generator_onnx)
        self.size = self.generator.size
        concurrent = getattr(self.generator, "concurrent", False)
        self._generating = nullcontext() if concurrent else threading.Lock()
        if self.size != int(avatar.manifest.generator["size"]):
            raise AvatarError(f"{avatar.generator_onnx} does not match the manifest's size")
        # Each loop frame's own face mask depends on the frame alone: all are made here
        # (about 1 ms each, when the avatar loads, so no live frame pays for one and
        # memory does not grow while sessions run) if they fit in MASK_CACHE_BYTES; else
        # each frame makes its own.
        frames = avatar.frames.shape[0]
        self._own_masks: list[np.ndarray] | None = None
        if frames * self.size**2 * 4 <= MASK_CACHE_BYTES:
            self._own_masks = [
                feathered_mask(self.box.apply(landmarks, self.size), self.size)
                for landmarks in avatar.track.landmarks
            ]

    def _own_mask(self, index: int) -> np.ndarray | None:
        return None if self._own_masks is None else self._own_masks[index]

    def sample(self, index: int, face68: np.ndarray) -> CropSample:
        track = self.avatar.track
        return crop_sample(
            self.avatar.frames[index],
            face68,
            self.box,
            self.size,
            target_face=track.landmarks[index],
            edges=track.edge_map(index),
            target_mask=self._own_mask(index),
        )

    def render(self, index: int, face68: np.ndarray) -> Rendered:
        """Loop frame ``index`` with its face redrawn to ``face68`` (68, 2) image pixels."""
        sample = self.sample(index, face68)
        x = generator_input(sample)[None]
        with self._generating:
            y = self.generator(x)
        crop = to_image(y[0])
        return Rendered(self.composite(index, crop, sample.mask), crop, sample)

    def composite(self, index: int, crop: np.ndarray, mask: np.ndarray) -> np.ndarray:
        """Blend the (S, S, 3) generated crop into the full frame with the (S, S) mask.

        Only the mask's bounding box is resized and blended: the rest of the crop is the
        frame's own pixels either way.
        """
        frame = self.avatar.frames[index].copy()
        rows, cols = np.nonzero(mask.max(axis=1))[0], np.nonzero(mask.max(axis=0))[0]
        if not len(rows):
            return frame
        box, size = self.box, self.size
        scale = box.size / size
        # The bounding box in crop pixels, grown by one pixel for the interpolation.
        top, bottom = max(rows[0] - 1, 0), min(rows[-1] + 2, size)
        left, right = max(cols[0] - 1, 0), min(cols[-1] + 2, size)
        y0, y1 = box.y + int(top * scale), box.y + min(int(np.ceil(bottom * scale)), box.size)
        x0, x1 = box.x + int(left * scale), box.x + min(int(np.ceil(right * scale)), box.size)
        # Frame pixel -> crop pixel, sampled like cv2.resize of the whole crop would.
        to_crop = np.array(
            [
                [1 / scale, 0, (x0 - box.x + 0.5) / scale - 0.5],
                [0, 1 / scale, (y0 - box.y + 0.5) / scale - 0.5],
            ],
            np.float32,
        )
        shape = (x1 - x0, y1 - y0)
        flags = cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP
        face = cv2.warpAffine(crop, to_crop, shape, flags=flags, borderMode=cv2.BORDER_REPLICATE)
        alpha = cv2.warpAffine(mask, to_crop, shape, flags=flags, borderMode=cv2.BORDER_CONSTANT)
        region = frame[y0:y1, x0:x1]
        region[:] = cv2.blendLinear(face, region, alpha, 1.0 - alpha)
        return frame
