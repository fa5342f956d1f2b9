"""Draw the live status overlay (audio level, voice activity, emotion) onto a frame."""

from dataclasses import dataclass

import cv2
import numpy as np

_LEVEL_FLOOR_DB = -60.0


@dataclass(frozen=True)
class OverlayState:
    level_db: float | None  # None: no audio for this frame yet
    voiced: bool
    emotion_label: str


def draw_overlay(frame: np.ndarray, state: OverlayState) -> np.ndarray:
    """(H, W, 3) uint8 RGB -> a copy with a level meter, a VAD dot and the emotion."""
    out = frame.copy()
    height, width = out.shape[:2]
    bar_h = max(8, height // 40)
    top = height - bar_h - 6
    cv2.rectangle(out, (6, top), (width - 6, top + bar_h), (30, 30, 30), thickness=-1)
    if state.level_db is not None:
        fill = np.clip((state.level_db - _LEVEL_FLOOR_DB) / -_LEVEL_FLOOR_DB, 0.0, 1.0)
        right = 6 + int(round(fill * (width - 12)))
        colour = (80, 220, 80) if state.voiced else (160, 160, 160)
        cv2.rectangle(out, (6, top), (right, top + bar_h), colour, thickness=-1)
    dot = (255, 60, 60) if state.voiced else (90, 90, 90)
    cv2.circle(out, (18, top - 16), 8, dot, thickness=-1)
    label = (
        state.emotion_label if state.level_db is not None else f"{state.emotion_label} (no audio)"
    )
    cv2.putText(
        out, label, (34, top - 10), cv2.FONT_HERSHEY_SIMPLEX, 0.6, (0, 0, 0), 3, cv2.LINE_AA
    )
    cv2.putText(
        out, label, (34, top - 10), cv2.FONT_HERSHEY_SIMPLEX, 0.6, (255, 255, 255), 1, cv2.LINE_AA
    )
    return out
