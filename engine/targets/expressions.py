"""Emotion expression offsets: how each emotion moves brows, eyes, mouth corners and jaw.

    expression_features(frontal68)   (..., 8) named measures of a face, in IOD (FEATURES)
    reference_expressions(mead_dir)  per MEAD identity, each emotion's feature displacement
                                     from that identity's neutral: the real reference
    expression_offsets(mead_dir, exclude)  (8, 68, 2) the same as landmark offsets in IOD,
                                     averaged over identities: the lips stage's targets
    estimate_offsets(mead_dir)       (8, 68, 2) landmark offsets for the teacher targets

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
from engine.errors import EngineError
from engine.face.tracking import track_video

#: What an expression does to a face, each in units of the inter-ocular distance (outer
#: eye corners), signed so that positive reads as the name says.
FEATURES = (
    "corners_up",  # mouth corners above the middle of the lips
    "mouth_width",  # corner to corner
    "opening",  # inner lips apart
    "upper_lip_up",  # upper lip's middle towards the eyes
    "inner_brows_up",  # inner brow ends above the eyes
    "outer_brows_up",  # outer brow ends above the eyes
    "eyes_open",  # eyelids apart
    "jaw_down",  # chin below the eyes
)


def expression_features(frontal68: np.ndarray) -> np.ndarray:
    """(..., 68, 2+) frontal landmarks (y down) -> (..., 8) FEATURES in IOD."""
    f = np.asarray(frontal68, np.float64)[..., :2]
    x, y = f[..., 0], f[..., 1]
    iod = np.linalg.norm(f[..., 45, :] - f[..., 36, :], axis=-1)
    eyes = y[..., 36:48].mean(axis=-1)
    lids = [(37, 41), (38, 40), (43, 47), (44, 46)]
    features = np.stack(
        [
            (y[..., 51] + y[..., 57]) / 2 - (y[..., 48] + y[..., 54]) / 2,
            np.hypot(x[..., 54] - x[..., 48], y[..., 54] - y[..., 48]),
            y[..., 66] - y[..., 62],
            -(y[..., 51] - eyes),
            eyes - (y[..., 21] + y[..., 22]) / 2,
            eyes - (y[..., 17] + y[..., 26]) / 2,
            np.mean([y[..., lo] - y[..., up] for up, lo in lids], axis=0),
            y[..., 8] - eyes,
        ],
        axis=-1,
    )
    return features / iod[..., None]


def _per_identity(
    mead_dir: Path, measure, cache_dir: Path | None, exclude: frozenset[str]
) -> dict[str, dict[str, np.ndarray]]:
    """{identity: {emotion: median over the frames of measure(frontal68) minus the same for
    its neutral}} for every MEAD identity with a neutral clip and not in ``exclude``; the
    strongest level of each emotion. The median over a clip's frames keeps the
    expression and drops most of the speech."""
    clips: dict[tuple[str, str], list] = defaultdict(list)
    for record in load_mead(mead_dir).records:
        if record.speaker not in exclude:
            clips[(record.speaker, record.emotion)].append(record)
    medians: dict[str, dict[str, np.ndarray]] = defaultdict(dict)
    for (speaker, emotion), records in sorted(clips.items()):
        top = max(r.intensity for r in records)
        frames = []
        for record in (r for r in records if r.intensity == top):
            track = track_video(record.path, cache_dir=cache_dir)
            frames.append(measure(track.frontal68[track.valid][..., :2].astype(np.float64)))
        medians[speaker][emotion] = np.median(np.concatenate(frames), axis=0)
    return {
        speaker: {e: m - per["neutral"] for e, m in per.items()}
        for speaker, per in medians.items()
        if "neutral" in per
    }


def reference_expressions(
    mead_dir: Path, cache_dir: Path | None = None
) -> dict[str, dict[str, np.ndarray]]:
    """{identity: {emotion: (8,) FEATURES displacement from its neutral}} (``_per_identity``)."""
    return _per_identity(mead_dir, expression_features, cache_dir, frozenset())


def _in_iod(frontal: np.ndarray) -> np.ndarray:
    """(T, 68, 2) -> the same in units of each frame's inter-ocular distance."""
    iod = np.linalg.norm(frontal[:, 45] - frontal[:, 36], axis=-1)
    return frontal / iod[:, None, None]


def expression_offsets(
    mead_dir: Path, exclude: frozenset[str] = frozenset(), cache_dir: Path | None = None
) -> "ExpressionOffsets":
    """(8, 68, 2) offsets in IOD units, averaged over the identities not in ``exclude``:
    what the landmark stage is taught to add for each emotion at intensity 1."""
    per = _per_identity(mead_dir, _in_iod, cache_dir, exclude)
    if not per:
        raise EngineError(
            f"no MEAD identity under {mead_dir} outside {sorted(exclude)} has a neutral "
            "clip and emotion clips: the expression targets need at least one"
        )
    offsets = np.zeros((len(EMOTIONS), N_LANDMARKS, 2))
    for k, emotion in enumerate(EMOTIONS):
        shown = [d[emotion] for d in per.values() if emotion in d]
        if shown:
            offsets[k] = np.mean(shown, axis=0)
    return ExpressionOffsets(offsets, len(per), tuple(sorted(per)))


@dataclass(frozen=True)
class ExpressionOffsets:
    """(8, 68, 2) frontal-space offsets in EMOTIONS order; neutral is zero."""

    offsets: np.ndarray
    identities: int
    names: tuple[str, ...] = ()  # the identities averaged, where known

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
