"""Emotion expression offsets: how each emotion moves brows, eyes, mouth corners and jaw.

Estimated from MEAD clips: for every identity, the mean frontal landmarks of each emotion
minus that identity's neutral mean (so identity shape cancels), then averaged over
identities. Applied to any face's frontal landmarks with an intensity in [0, 1].
Per-frame speech motion averages out over a clip; what remains is the expression.
"""

from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from engine.constants import EMOTIONS, N_LANDMARKS
from engine.data.mead import load_mead
from engine.face.tracking import track_video


@dataclass(frozen=True)
class ExpressionOffsets:
    """(8, 68, 2) frontal-space offsets in EMOTIONS order; neutral is zero."""

    offsets: np.ndarray
    identities: int

    def apply(self, frontal68: np.ndarray, emotion: str, intensity: float = 1.0) -> np.ndarray:
        """(..., 68, 2+) frontal landmarks -> the same with the emotion's offset added to x, y."""
        out = np.array(frontal68, dtype=np.float64, copy=True)
        out[..., :2] += intensity * self.offsets[EMOTIONS.index(emotion)]
        return out


def estimate_offsets(mead_dir: Path, cache_dir: Path | None = None) -> ExpressionOffsets:
    """Track every frontal MEAD clip and average each emotion's offset from neutral."""
    means: dict[str, dict[str, np.ndarray]] = defaultdict(dict)
    for record in load_mead(mead_dir).records:
        track = track_video(record.path, cache_dir=cache_dir)
        means[record.speaker][record.emotion] = np.nanmean(
            track.frontal68[track.valid][..., :2], axis=0
        )
    offsets = np.zeros((len(EMOTIONS), N_LANDMARKS, 2))
    counts = np.zeros(len(EMOTIONS))
    identities = 0
    for per_emotion in means.values():
        if "neutral" not in per_emotion:
            continue
        identities += 1
        for emotion, mean in per_emotion.items():
            k = EMOTIONS.index(emotion)
            offsets[k] += mean - per_emotion["neutral"]
            counts[k] += 1
    if not identities:
        raise ValueError(f"no MEAD identity under {mead_dir} has a neutral clip to compare with")
    offsets /= np.maximum(counts, 1)[:, None, None]
    return ExpressionOffsets(offsets, identities)
