"""``evp eval landmarks``: predicted vs tracked frontal landmarks on real talking clips.

For each clip (any video with its own audio): track the face (engine.face.tracking),
take the speaker's neutral face as the tracking reference with the mouth at its rest
(most closed) shape, predict every frame from the clip's audio with the emotion taken
from the voice, and compare with tracking on the clip's own frame times. Metrics are
EVP's (DESIGN §9) in % of the inter-ocular distance, after mean-centring each frame:

    M-LD / M-LVD   mouth points (iBUG 48-67): position / frame-to-frame velocity distance
    F-LD / F-LVD   all 68 points

Baselines on the same clips and frames:
    mean_face      the clip's own mean tracked face held still (an oracle: it knows the
                   speaker's average mouth over the clip)
    audio_energy   the neutral face with jaw and lower lip lowered in proportion to the
                   audio level, with the gain fitted per clip by least squares (oracle gain)
"""

from collections.abc import Set as AbstractSet
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from engine.audio.frontend import FrontEndOptions, analyse_offline
from engine.audio.prosody import relative_loudness
from engine.constants import JAW, MOUTH, SAMPLE_RATE, VIDEO_FPS
from engine.data.clips import load_clips
from engine.data.speakers import speaker_group
from engine.errors import EngineError
from engine.face.neutral import neutral_face
from engine.face.tracking import track_video
from engine.model.emotion_space import EmotionSpace
from engine.model.inference import LandmarkModel
from engine.targets.teacher import PERCENT, read_media_audio
from engine.targets.visemes import inner_lip_opening, landmark_distances

METRICS = ("M-LD", "M-LVD", "F-LD", "F-LVD")
#: How far each point moves down when the jaw opens, relative to the lower lip's centre.
_LOWER_LIP = (55, 56, 57, 58, 59, 65, 66, 67)
_CHIN = (6, 7, 8, 9, 10)


@dataclass
class ClipResult:
    name: str
    frames: int
    metrics: dict[str, dict[str, float]]  # method -> metric -> value
    times: np.ndarray  # (T,) seconds
    openings: dict[str, np.ndarray]  # "tracked" and each method -> (T,) inner-lip opening


def metrics(predicted: np.ndarray, tracked: np.ndarray) -> dict[str, float]:
    mouth = slice(MOUTH.start, MOUTH.stop)
    m_ld, m_lvd = landmark_distances(predicted[:, mouth], tracked[:, mouth])
    f_ld, f_lvd = landmark_distances(predicted, tracked)
    return dict(zip(METRICS, (PERCENT * v for v in (m_ld, m_lvd, f_ld, f_lvd)), strict=True))


def opening_pattern() -> np.ndarray:
    """(68, 2) unit jaw-opening displacement: lower lip and chin down, corners half."""
    pattern = np.zeros((68, 2))
    pattern[list(_LOWER_LIP), 1] = 1.0
    pattern[[54, 48, 60, 64], 1] = 0.5
    pattern[list(_CHIN), 1] = 1.0
    pattern[[JAW.start + 4, JAW.start + 12], 1] = 0.5
    return pattern


def energy_baseline(neutral: np.ndarray, level_db: np.ndarray, tracked: np.ndarray) -> np.ndarray:
    """Neutral face + gain * loudness(t) * opening pattern, gain fitted on this clip."""
    loudness = relative_loudness(level_db)
    pattern = opening_pattern()
    centred = lambda x: x - x.mean(axis=-2, keepdims=True)
    basis = centred(loudness[:, None, None] * pattern[None]).reshape(len(loudness), -1)
    residual = (centred(tracked) - centred(neutral[None])).reshape(len(loudness), -1)
    gain = float((basis * residual).sum() / max((basis * basis).sum(), 1e-12))
    return neutral[None] + gain * loudness[:, None, None] * pattern[None]


def _at_times(per_frame: np.ndarray, times: np.ndarray) -> np.ndarray:
    """Values made for 25 fps frames k (centred at (k + 0.5) / 25) -> at ``times``."""
    source = (np.arange(len(per_frame)) + 0.5) / VIDEO_FPS
    flat = per_frame.reshape(len(per_frame), -1)
    out = np.stack([np.interp(times, source, flat[:, j]) for j in range(flat.shape[1])], axis=1)
    return out.reshape(len(times), *per_frame.shape[1:])


def evaluate_clip(
    path: Path, model: LandmarkModel, space: EmotionSpace, cache_dir: Path | None = None
) -> ClipResult:
    track = track_video(path, cache_dir=cache_dir)
    valid = track.valid
    if valid.sum() < 2:
        raise EngineError(f"{path.name}: no face was tracked")
    tracked = track.frontal68[valid][..., :2].astype(np.float64)
    times = (track.times - track.times[0])[valid]
    neutral = neutral_face(track)[:, :2]
    audio = read_media_audio(path, SAMPLE_RATE)
    windows, levels, _ = analyse_offline(audio, FrontEndOptions(window=model.window))
    try:
        code = space.from_signal(audio)
    except EngineError:  # too short to judge: neutral
        code = space.neutral
    predicted = _at_times(model.predict(windows, code, neutral).astype(np.float64), times)
    level_db = _at_times(levels[:, None], times)[:, 0]
    methods = {
        "model": predicted,
        "mean_face": np.repeat(tracked.mean(axis=0)[None], len(tracked), axis=0),
        "audio_energy": energy_baseline(neutral, level_db, tracked),
    }
    openings = {"tracked": inner_lip_opening(tracked[:, MOUTH.start : MOUTH.stop])}
    openings |= {
        name: inner_lip_opening(p[:, MOUTH.start : MOUTH.stop]) for name, p in methods.items()
    }
    return ClipResult(
        path.stem,
        len(tracked),
        {name: metrics(p, tracked) for name, p in methods.items()},
        times,
        openings,
    )


def evaluate_clips(
    model: LandmarkModel,
    space: EmotionSpace,
    clips_dir: Path | list[Path],
    cache_dir: Path | None = None,
    png: Path | None = None,
    trained_groups: AbstractSet[str] = frozenset(),
) -> tuple[list[ClipResult], list[list[str]]]:
    """Every usable clip under ``clips_dir`` (one folder or several) evaluated (``png``:
    their openings drawn), and the [path, reason] of each one skipped: unusable media, no
    face tracked, or a speaker in ``trained_groups`` (engine.data.speakers): a model is
    only scored on people it never learned from."""
    folders = [Path(clips_dir)] if isinstance(clips_dir, str | Path) else list(clips_dir)
    clips, skipped = [], []
    for folder in folders:
        found, loaded = load_clips(folder)
        clips += found
        skipped += [[str(p), why] for p, why in loaded.skipped]
    results = []
    for clip in clips:
        group = speaker_group(clip.path.stem)
        if group in trained_groups:
            skipped.append([str(clip.path), f"the model trained on this speaker ({group})"])
            continue
        try:
            results.append(evaluate_clip(clip.path, model, space, cache_dir))
        except EngineError as e:  # no face tracked: reported, the others still count
            skipped.append([str(clip.path), str(e)])
    if not results:
        raise EngineError(
            f"no clip to evaluate under {', '.join(map(str, folders))}: "
            f"{len(skipped)} skipped (untracked, or speakers the model trained on)"
        )
    if png is not None:
        plot_openings(results, png)
    return results, skipped


def evaluate_landmarks(
    model: LandmarkModel,
    space: EmotionSpace,
    clips_dir: Path,
    cache_dir: Path | None = None,
    png: Path | None = None,
) -> dict:
    results, skipped = evaluate_clips(model, space, clips_dir, cache_dir, png)
    mean = lambda method: {
        k: round(float(np.mean([r.metrics[method][k] for r in results])), 3) for k in METRICS
    }
    return {
        "units": "% of inter-ocular distance",
        "model": mean("model"),
        "baselines": {name: mean(name) for name in ("mean_face", "audio_energy")},
        "clips": len(results),
        "per_clip": {r.name: {"frames": r.frames, **r.metrics} for r in results},
        "skipped": skipped,
        "lookahead_ms": round(model.window.lookahead_seconds * 1000, 1),
    }


def plot_openings(results: list[ClipResult], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(len(results), 1, figsize=(10, 2.2 * len(results)), squeeze=False)
    for axis, result in zip(axes[:, 0], results, strict=True):
        for name, opening in result.openings.items():
            axis.plot(
                result.times,
                PERCENT * opening,
                label=name,
                lw=2 if name in ("tracked", "model") else 1,
            )
        axis.set_title(result.name, fontsize=9)
        axis.set_ylabel("lip gap, % IOD", fontsize=8)
    axes[0, 0].legend(fontsize=7, ncol=4)
    axes[-1, 0].set_xlabel("seconds")
    figure.tight_layout()
    figure.savefig(path, dpi=90)
    plt.close(figure)
