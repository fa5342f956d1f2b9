"""``evp eval rendered-lips``: does the avatar's face do what the landmarks say?

The landmark model can open the mouth while the generator ignores the sketch; only the
rendered frames show what users see. For each real talking clip (speech with its own
video, so a real speaker's mouth is known), the avatar is driven by the clip's audio
through the live pipeline (``evp render``, emotion neutral), the output video is tracked
with FaceMesh, and on its frontal landmarks (IOD units, so faces of any size compare):

    r             Pearson r of the rendered inner-lip opening with the predicted one (the
                  landmarks the generator was given) at the best lag within ±40 ms
    range         std of the rendered opening over std of the real speaker's tracked one
                  (1: the avatar moves its lips as much as the person who spoke)
    follow        std of the rendered opening over std of the predicted one
    pause / speech  median rendered opening (% IOD) in the quiet and loud frames of the
                  audio, above the avatar's own closed mouth: closes in pauses, opens in
                  speech
"""

import tempfile
from pathlib import Path

import numpy as np

from engine.audio.prosody import relative_loudness
from engine.avatar.bundle import Avatar
from engine.constants import MOUTH, SAMPLE_RATE, VIDEO_FPS
from engine.errors import EngineError
from engine.face.tracking import track_video
from engine.pipeline.emotion import NEUTRAL
from engine.pipeline.portrait import PortraitEngine
from engine.pipeline.render_video import EmotionChoice, render_video
from engine.targets.sync import best_lag
from engine.targets.teacher import PERCENT, read_media_audio
from engine.targets.visemes import frame_times, inner_lip_opening

MAX_LAG_S = 0.04  # one video frame: the rendered frame k shows predicted frame k
QUIET, LOUD = 0.15, 0.5  # loudness (0..1 between the clip's 10th and 99th dB percentile)


def _opening(frontal: np.ndarray) -> np.ndarray:
    return inner_lip_opening(frontal[..., MOUTH.start : MOUTH.stop, :2]).astype(np.float64)


def _loudness(audio: np.ndarray, frames: int) -> np.ndarray:
    """(frames,) 0..1 loudness of each 40 ms frame of 16 kHz audio."""
    hop = SAMPLE_RATE // VIDEO_FPS
    chunks = audio[: frames * hop].astype(np.float64)
    chunks = np.pad(chunks, (0, frames * hop - len(chunks))).reshape(frames, hop)
    return relative_loudness(10 * np.log10(np.mean(chunks**2, axis=1) + 1e-10))


def rendered_clip(
    clip: Path, engine: PortraitEngine, avatar: Avatar, work: Path, cache_dir: Path | None
) -> dict:
    real = track_video(clip, cache_dir=cache_dir)
    if real.valid.sum() < 2:
        raise EngineError(f"{clip.name}: no face was tracked in the real clip")
    out, landmarks = work / f"{clip.stem}.mp4", work / f"{clip.stem}.npy"
    render_video(clip, out, engine, avatar, EmotionChoice(NEUTRAL), landmarks)
    predicted = _opening(np.load(landmarks))
    rendered_track = track_video(out, cache_dir=work / "tracking")
    frames = min(len(predicted), len(rendered_track.valid))
    seen = rendered_track.valid[:frames]
    if seen.sum() < 2:
        raise EngineError(f"{clip.name}: no face was tracked in the rendered video")
    rendered = np.full(frames, np.nan)
    rendered[seen] = _opening(rendered_track.frontal68[:frames][seen])
    times = frame_times(frames)
    sync = best_lag(times[seen], predicted[:frames][seen], rendered[seen], MAX_LAG_S)
    real_std = float(np.std(_opening(real.frontal68[real.valid])))
    closed = float(np.percentile(rendered[seen], 5))
    loud = _loudness(read_media_audio(clip, SAMPLE_RATE), frames)
    above = lambda mask: (
        round(PERCENT * float(np.median(rendered[mask & seen] - closed)), 2)
        if (mask & seen).any()
        else None
    )
    rendered_std = float(np.std(rendered[seen]))
    return {
        "frames": int(frames),
        "tracked": int(seen.sum()),
        "r": None if sync.r is None else round(sync.r, 3),
        "lag_ms": round(1000 * sync.lag_s),
        "range": round(rendered_std / real_std, 3) if real_std > 0 else None,
        "follow": round(rendered_std / max(float(np.std(predicted[:frames][seen])), 1e-9), 3),
        "pause_opening": above(loud < QUIET),
        "speech_opening": above(loud > LOUD),
        "rendered_std_iod_pct": round(PERCENT * rendered_std, 3),
        "real_std_iod_pct": round(PERCENT * real_std, 3),
    }


def evaluate_rendered_lips(
    engine: PortraitEngine,
    avatar: Avatar,
    clips: list[Path],
    cache_dir: Path | None = None,
    keep: Path | None = None,
) -> dict:
    """Each clip's figures (module doc) and their means; ``keep``: a folder for the
    rendered videos (default: a temporary one, removed)."""
    if not clips:
        raise EngineError("no clips to drive the avatar with")
    per_clip, skipped = {}, []
    with tempfile.TemporaryDirectory(prefix="evp-rendered-lips-") as tmp:
        work = Path(keep) if keep else Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        for clip in clips:
            try:
                per_clip[clip.stem] = rendered_clip(clip, engine, avatar, work, cache_dir)
            except EngineError as e:
                skipped.append([str(clip), str(e)])
    if not per_clip:
        raise EngineError(f"no clip could be rendered and tracked: {skipped}")
    mean = {}
    for key in ("r", "range", "follow", "pause_opening", "speech_opening"):
        values = [row[key] for row in per_clip.values() if row[key] is not None]
        mean[key] = round(float(np.mean(values)), 3) if values else None
    return {
        "avatar": avatar.manifest.name,
        "units": "openings in % of inter-ocular distance; range and follow are std ratios",
        "mean": mean,
        "per_clip": per_clip,
        "skipped": skipped,
    }
