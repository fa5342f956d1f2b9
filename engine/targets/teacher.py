"""How far the viseme teacher is from real tracked mouths: leave-one-clip-out on real clips.

For every clip: track the face (frontal mouth landmarks), recognise the phones of its own
audio, fit the viseme targets on the *other* clips, predict this clip's mouth from its
phones on its rest mouth, and measure M-LD / M-LVD against tracking. Two baselines hold the mouth
still: at the speaker's closed rest mouth ("closed"), and at the clip's own mean
mouth ("mean": an oracle baseline that knows the clip's average shape). Distances are in % of the inter-ocular distance.
"""

from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np

from engine.constants import MOUTH, SAMPLE_RATE
from engine.data.clips import load_clips
from engine.face.landmarks68 import to_ibug68
from engine.face.tracking import track_video
from engine.speech.align import PhoneAligner
from engine.targets.visemes import VisemeModel, inner_lip_opening, landmark_distances, rest_mouth

PERCENT = 100.0  # frontal units (IOD = 1) -> % of IOD


def read_media_audio(path: Path, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """The first audio stream of any media file as (n,) float32 mono at sample_rate."""
    chunks: list[np.ndarray] = []
    with av.open(str(path)) as container:
        resampler = av.AudioResampler(format="flt", layout="mono", rate=sample_rate)
        for frame in container.decode(audio=0):
            chunks.extend(f.to_ndarray().reshape(-1) for f in resampler.resample(frame))
        chunks.extend(f.to_ndarray().reshape(-1) for f in resampler.resample(None))
    return np.concatenate(chunks).astype(np.float32) if chunks else np.zeros(0, np.float32)


@dataclass
class ClipData:
    name: str
    phones: list
    times: np.ndarray  # (T,) seconds of the valid frames
    mouth: np.ndarray  # (T, 20, 2) tracked frontal mouth
    rest: np.ndarray  # (20, 2)
    face: np.ndarray  # (68, 2) the clip's canonical face (tracking reference) in frontal space


def prepare_clip(path: Path, aligner: PhoneAligner, cache_dir: Path | None = None) -> ClipData:
    track = track_video(path, cache_dir=cache_dir)
    phones = aligner.transcribe_and_align(read_media_audio(path))
    times = track.times - track.times[0]
    valid = track.valid
    mouth = track.frontal68[valid][:, MOUTH.start : MOUTH.stop, :2].astype(np.float64)
    times = times[valid]
    face = to_ibug68(track.reference)[:, :2].astype(np.float64)
    return ClipData(path.stem, phones, times, mouth, rest_mouth(mouth), face)


def evaluate(clips: list[ClipData]) -> dict:
    """Leave-one-clip-out M-LD/M-LVD of the viseme teacher and of two still baselines."""
    if len(clips) < 2:
        raise ValueError("the teacher error needs at least two clips (leave-one-out)")
    per_clip: dict[str, dict] = {}
    for held in clips:
        model = VisemeModel.fit(
            [(c.phones, c.times, c.mouth - c.rest) for c in clips if c is not held]
        )
        predicted = model.mouth(held.phones, held.times, held.rest)
        closed = np.repeat(held.rest[None], len(held.times), axis=0)
        mean = np.repeat(held.mouth.mean(axis=0)[None], len(held.times), axis=0)
        per_clip[held.name] = {
            "opening_correlation": float(
                np.corrcoef(inner_lip_opening(predicted), inner_lip_opening(held.mouth))[0, 1]
            ),
            "viseme": dict(
                zip(("M-LD", "M-LVD"), landmark_distances(predicted, held.mouth), strict=True)
            ),
            "closed": dict(
                zip(("M-LD", "M-LVD"), landmark_distances(closed, held.mouth), strict=True)
            ),
            "mean": dict(zip(("M-LD", "M-LVD"), landmark_distances(mean, held.mouth), strict=True)),
            "frames": len(held.times),
        }
    summary = {
        method: {
            metric: round(
                PERCENT * float(np.mean([c[method][metric] for c in per_clip.values()])), 3
            )
            for metric in ("M-LD", "M-LVD")
        }
        for method in ("viseme", "closed", "mean")
    }
    correlations = [c["opening_correlation"] for c in per_clip.values()]
    return {
        "units": "% of inter-ocular distance",
        "clips": len(clips),
        **summary,
        "opening_correlation_mean": round(float(np.mean(correlations)), 3),
        "per_clip": per_clip,
    }


def teacher_error(clips_dir: Path, cache_dir: Path | None = None) -> dict:
    clips, _ = load_clips(clips_dir)
    aligner = PhoneAligner()
    return evaluate([prepare_clip(c.path, aligner, cache_dir) for c in clips])
