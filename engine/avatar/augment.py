"""What a video avatar's own frames never show: framing and expression training frames.

    call_framing(frames, landmarks, face_share)  the square window, at the source's own
                                                 resolution, in which the face fills
                                                 face_share of the height, as a video
                                                 call frames it (never upscaled)
    emotion_shapes()                             {emotion: (68, 2)} what the shipped
                                                 landmark model asks of a face for each
                                                 emotion at intensity 1
    expression_frames(frames, landmarks, count, shapes)
                                                 (count, H, W, 3) training-only frames:
                                                 source frames warped to those emotions
                                                 and to random expressions (brows,
                                                 eyelids, mouth corners, mouth width) up
                                                 to EXPRESSION_RANGE times
                                                 engine.avatar.photo.express's unit

A video of someone speaking calmly never frowns or drops the mouth corners, so its
generator, asked for those shapes, falls back to the faces it knows. The warped frames
show it each shape with the person's own texture, as photos already get
(engine.avatar.photo.motion_frames).

frames: (T, H, W, 3) uint8 RGB; landmarks: (T, 68, 2) iBUG points in frame pixels.
"""

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from engine.avatar.photo import express, open_mouth, pose_face
from engine.errors import AvatarError

#: How far the random expression frames go, in units of ``express``'s amounts (1: brows
#: 12 %, eyelids and mouth corners 5 % of the eye distance).
EXPRESSION_RANGE = 2.0
BROW_TOP = list(range(17, 27))
CHIN = 8


@dataclass(frozen=True)
class Window:
    """A square window of the source frames, pixels."""

    x: int
    y: int
    size: int

    def crop(self, frames: np.ndarray) -> np.ndarray:
        """(T, H, W, 3) -> (T, size, size, 3)."""
        return np.ascontiguousarray(
            frames[:, self.y : self.y + self.size, self.x : self.x + self.size]
        )


def face_height(landmarks: np.ndarray) -> np.ndarray:
    """(..., 68, 2) -> (...,) brow top to chin, pixels: the height a viewer sees as the face."""
    return landmarks[..., CHIN, 1] - landmarks[..., BROW_TOP, 1].min(axis=-1)


def call_framing(frame_size: tuple[int, int], landmarks: np.ndarray, face_share: float) -> Window:
    """(height, width) and (T, 68, 2) tracked landmarks -> the largest square window in
    which the face fills at least ``face_share`` of the height in the median frame, with
    the eyes a little above the middle. Raises AvatarError when no window of the source
    holds the whole face at that share (the face is too close to an edge)."""
    if not 0.2 <= face_share <= 0.8:
        raise AvatarError(f"--face-share must be between 0.2 and 0.8, got {face_share}")
    points = np.asarray(landmarks, np.float64)
    points = points[np.isfinite(points).all(axis=(1, 2))]
    if not len(points):
        raise AvatarError("no tracked face to frame")
    height, width = frame_size
    side = int(min(np.median(face_height(points)) / face_share, height, width)) // 2 * 2
    low, high = points.reshape(-1, 2).min(axis=0), points.reshape(-1, 2).max(axis=0)
    if (high - low).max() > side:
        raise AvatarError(
            f"the face moves over {int((high - low).max())} px, more than a {side} px window "
            f"at --face-share {face_share}: use a lower share or a steadier clip"
        )
    eyes = np.median(points[:, 36:48].mean(axis=1), axis=0)
    x = int(np.clip(round(eyes[0] - side / 2), max(0, high[0] - side), min(low[0], width - side)))
    y = int(
        np.clip(round(eyes[1] - 0.42 * side), max(0, high[1] - side), min(low[1], height - side))
    )
    return Window(x, y, side)


def emotion_shapes(checkpoint: Path | None = None) -> dict[str, np.ndarray]:
    """{emotion: (68, 2)} what the landmark model (the shipped weights by default) adds to
    a frontal face for each emotion at intensity 1, in IOD units: the median over 2 s
    of silence of the emotion's prediction minus neutral's."""
    from engine.model.emotion_space import EmotionSpace
    from engine.model.inference import LandmarkModel

    model = LandmarkModel.load(checkpoint)
    space = EmotionSpace.from_checkpoint(model.checkpoint)
    neutral = model.canonical_face
    iod = float(np.linalg.norm(neutral[45] - neutral[36]))
    windows, _ = model.windows(np.zeros(2 * 16000, np.float32))
    rest = model.predict(windows, space.category("neutral"), neutral)
    return {
        emotion: np.median(model.predict(windows, space.category(emotion), neutral) - rest, 0) / iod
        for emotion in space.known
        if emotion != "neutral"
    }


def _in_frame(shape: np.ndarray, face: np.ndarray) -> np.ndarray:
    """(68, 2) frontal IOD-unit displacement -> image pixels for a face (68, 2): scaled by
    its eye distance and turned by the roll of its eye line."""
    eye_line = face[45] - face[36]
    cos, sin = eye_line / np.linalg.norm(eye_line)
    return np.linalg.norm(eye_line) * shape @ np.array([[cos, sin], [-sin, cos]])


def expression_frames(
    frames: np.ndarray,
    landmarks: np.ndarray,
    count: int,
    seed: int = 0,
    shapes: dict[str, np.ndarray] | None = None,
) -> np.ndarray:
    """(count, H, W, 3): frames drawn evenly from the given ones, each warped to an
    expression, seeded so a build is reproducible. With ``shapes`` (emotion_shapes), two
    in three show one emotion at an intensity drawn in [0.25, 1.1]; the others, and all
    without shapes, random ``express`` amounts in +-EXPRESSION_RANGE. Each mouth is
    widened or narrowed and opened a little."""
    if not len(frames) or len(frames) != len(landmarks):
        raise ValueError(f"{len(frames)} frames for {len(landmarks)} landmark sets")
    rng = np.random.default_rng(seed)
    picks = np.linspace(0, len(frames) - 1, count).round().astype(int)
    emotions = sorted(shapes or {})
    out = []
    for i in picks:
        face = landmarks[i].astype(np.float64)
        if emotions and rng.random() < 2 / 3:
            shape = shapes[emotions[int(rng.integers(len(emotions)))]]  # type: ignore[index]
            target = face + rng.uniform(0.25, 1.1) * _in_frame(shape, face)
        else:
            target = express(face, *rng.uniform(-EXPRESSION_RANGE, EXPRESSION_RANGE, 4))
        target = open_mouth(target, rng.uniform(0, 0.5), rng.uniform(-1, 1))
        out.append(pose_face(frames[i], face, target))
    return np.stack(out)
