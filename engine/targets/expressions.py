"""Emotion expression offsets: how each emotion moves brows, eyes, mouth corners and jaw.

    expression_features(frontal68)   (..., 8) named measures of a face, in IOD (FEATURES)
    reference_expressions(mead_dir)  per MEAD identity, each emotion's feature displacement
                                     from that identity's neutral: the real reference
    expression_offsets(mead_dir, exclude, wild_dir, neutral_dirs)
                                     (8, 68, 2) the same as landmark offsets in IOD,
                                     averaged over every identity that shows the emotion
                                     (MEAD and emotion_wild): the lips stage's targets
    population_neutral(neutral_dirs) (68, 2) the median neutral face of many speakers
    estimate_offsets(mead_dir)       (8, 68, 2) landmark offsets for the teacher targets

Estimated from real clips: for every identity, the median frontal landmarks of each
emotion minus that identity's own neutral (so identity shape cancels), then averaged over
identities. An identity filmed in one emotion only (emotion_wild, MEAD clips without
their neutral) is measured against the population's neutral face instead: the median
over the speakers of natural, calm speech (talking clips). That leaves the person's own
face shape in their displacement (on the two MEAD identities with both, the
population-based displacement keeps cosine 0.79-0.96 with the own-neutral one for M030,
0.19-0.82 for W009; docs/models.md), which averaging over identities shrinks.
Applied to any face's frontal landmarks with an intensity in [0, 1]. Per-frame speech
motion averages out over a clip; what remains is the expression.
"""

import re
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from engine.constants import EMOTIONS, N_LANDMARKS
from engine.data.emotion_wild import load_wild
from engine.data.labels import to_mead_emotion
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


#: Emotions whose opening is part of the expression: surprise drops the jaw (FACS AU26).
OPEN_EMOTIONS = ("surprised",)
UPPER_LIP = [49, 50, 51, 52, 53, 61, 62, 63]
LOWER_LIP = [55, 56, 57, 58, 59, 65, 66, 67]
CHIN = list(range(5, 12))
CHIN_SHARE = np.array([0.5, 1.0, 1.0, 1.0, 1.0, 1.0, 0.5])  # the chin's points 5..11


UPPER_FACE = list(range(17, 27)) + list(range(36, 48))  # brows and eyes


def region_gains(upper: float, lower: float) -> np.ndarray:
    """(68, 1) a gain per landmark: ``upper`` for the brows and eyes, ``lower`` for the
    mouth, nose and jaw (how much stronger than a real face the lips stage draws each)."""
    gains = np.full((N_LANDMARKS, 1), float(lower))
    gains[UPPER_FACE] = upper
    return gains


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


def _median_face(path: Path, cache_dir: Path | None) -> np.ndarray:
    """(68, 2) the median over a clip's tracked frames of its frontal landmarks in IOD."""
    track = track_video(path, cache_dir=cache_dir)
    return np.median(_in_iod(track.frontal68[track.valid][..., :2].astype(np.float64)), axis=0)


def population_neutral(
    neutral_dirs: list[Path], exclude: frozenset[str], cache_dir: Path | None = None
) -> np.ndarray:
    """(68, 2) in IOD: the median over speakers (engine.data.speakers groups, those in
    ``exclude`` and MEAD's acted clips left out) of each one's median face in calm speech."""
    from engine.data.speakers import speaker_group

    per_speaker: dict[str, list[np.ndarray]] = defaultdict(list)
    for folder in neutral_dirs:
        for path in sorted(Path(folder).glob("*.mp4")):
            group = speaker_group(path.stem)
            if "MEAD" in path.stem or group in exclude:
                continue
            per_speaker[group].append(_median_face(path, cache_dir))
    if not per_speaker:
        raise EngineError(f"no talking clips under {[str(d) for d in neutral_dirs]}")
    return np.median([np.median(faces, axis=0) for faces in per_speaker.values()], axis=0)


_MEAD_TALKING = re.compile(r"MEAD_([MW]\d{3})_level_\d_([a-z]+)_\d+$")


def _mead_among_talking(folders: tuple[Path, ...]) -> list[tuple[str, str, Path]]:
    """(identity, emotion, path) of the MEAD clips among the talking clips (emotional
    speech without the speaker's neutral), e.g. spectre_MEAD_M026_level_3_disgusted_018."""
    found = []
    for folder in folders:
        for path in sorted(Path(folder).glob("*MEAD_*.mp4")):
            if match := _MEAD_TALKING.search(path.stem):
                found.append((f"mead-{match[1]}", to_mead_emotion(match[2]), path))
    return found


def expression_offsets(
    mead_dir: Path,
    exclude: frozenset[str] = frozenset(),
    cache_dir: Path | None = None,
    wild_dir: Path | None = None,
    neutral_dirs: tuple[Path, ...] = (),
) -> "ExpressionOffsets":
    """(8, 68, 2) offsets in IOD units, averaged over the identities not in ``exclude``:
    what the landmark stage is taught to add for each emotion at intensity 1. MEAD
    identities with a neutral clip are measured from it; emotion_wild's (``wild_dir``,
    labels checked by eye: engine.data.emotion_wild) from the population neutral of the
    talking clips in ``neutral_dirs``, which wild_dir needs."""
    per = _per_identity(mead_dir, _in_iod, cache_dir, exclude)
    if wild_dir is not None:
        if not neutral_dirs:
            raise EngineError("emotion_wild clips need talking clips for the population neutral")
        population = population_neutral(list(neutral_dirs), exclude, cache_dir)
        shown: dict[str, dict[str, list[np.ndarray]]] = defaultdict(lambda: defaultdict(list))
        clips = [(c.identity, c.emotion, c.path) for c in load_wild(wild_dir)]
        clips += _mead_among_talking(neutral_dirs)
        for identity, emotion, path in clips:
            if identity not in exclude and identity not in per and emotion != "neutral":
                shown[identity][emotion].append(_median_face(path, cache_dir))
        for identity, emotions in shown.items():
            per[identity] = {e: np.mean(f, axis=0) - population for e, f in emotions.items()}
    if not per:
        raise EngineError(
            f"no MEAD identity under {mead_dir} outside {sorted(exclude)} has a neutral "
            "clip and emotion clips: the expression targets need at least one"
        )
    offsets = np.zeros((len(EMOTIONS), N_LANDMARKS, 2))
    counts = {}
    for k, emotion in enumerate(EMOTIONS):
        shown_by = [d[emotion] for d in per.values() if emotion in d]
        counts[emotion] = len(shown_by)
        if shown_by and emotion != "neutral":
            offsets[k] = np.mean(shown_by, axis=0)
    return ExpressionOffsets(offsets, len(per), tuple(sorted(per)), counts)


@dataclass(frozen=True)
class ExpressionOffsets:
    """(8, 68, 2) frontal-space offsets in EMOTIONS order; neutral is zero."""

    offsets: np.ndarray
    identities: int
    names: tuple[str, ...] = ()  # the identities averaged, where known
    per_emotion: dict[str, int] | None = None  # how many identities show each emotion

    def closed(self, keep: tuple[str, ...] = OPEN_EMOTIONS) -> "ExpressionOffsets":
        """The same offsets with the mouth's opening taken out of every emotion but those
        in ``keep``: the lips brought together around their middle (the upper lip down and
        the lower lip and chin up by half the inner-lip gap the emotion adds each), so the
        corners keep their height against the lips' middle. A clip's median face still
        opens the mouth as far as its speech does; scaled by the lips stage's expression
        gain, that would hold the mouth open in silence, and the opening is the speech's."""
        out = self.offsets.copy()
        for k, emotion in enumerate(EMOTIONS):
            if emotion not in keep:
                half = (out[k, 66, 1] - out[k, 62, 1]) / 2
                out[k, UPPER_LIP, 1] += half
                out[k, LOWER_LIP, 1] -= half
                out[k, CHIN, 1] -= half * CHIN_SHARE
        return ExpressionOffsets(out, self.identities, self.names, self.per_emotion)

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
