"""Real talking clips as landmark targets: tracked frontal faces on the 25 fps grid.

For each clip under the given folders (any video with its own audio):

1. check it shows one face (more than one in most of 5 sampled frames: dropped, since
   whose mouth the speech moves is unknown), track it (engine.face.tracking, cached by
   content) and take the speaker's neutral
   face as `evp eval landmarks` does (tracking reference, mouth at rest);
2. find its constant audio/video offset: the lag within ±``MAX_OFFSET_S`` at which the
   inner-lip opening best follows the audio's loudness, relative to the median lag over
   all clips (mouths open a little before the sound; only the clip's departure from
   that is an offset). A clip is shifted only on clear evidence: at least
   ``MIN_OFFSET_SECONDS`` long, best r at least ``MIN_OFFSET_R``, and better than the r at
   the median lag by ``MIN_OFFSET_GAIN``; otherwise its offset is 0;
3. resample the tracked frontal landmarks to video frame k's centre (k + 0.5) / 25 s plus
   the offset, and mask frames that cannot be trusted: not tracked (or interpolated over
   a longer gap), head turned more than ``MAX_YAW_DEG``, or a mouth jump faster than any
   real mouth moves (a tracking glitch);
4. drop whole clips that are too short, silent, or mostly masked, with the reason.

Every clip keeps its speaker group and split (engine.data.speakers), so training reads
only "train" clips and evaluation only held-out ones.
"""

import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from engine.audio.mfcc import WindowSpec, video_frame_windows
from engine.audio.prosody import N_PROSODY, compute_hop_features, relative_loudness
from engine.constants import MFCC_HOPS_PER_VIDEO_FRAME, MFCC_N_COEFFS, MOUTH, SAMPLE_RATE, VIDEO_FPS
from engine.data.clips import load_clips
from engine.data.speakers import speaker_group, split_of
from engine.errors import EngineError
from engine.face.neutral import neutral_face
from engine.face.pose import rotation_angles
from engine.face.tracking import FaceTrack, faces_in_video, track_video
from engine.targets.sync import Sync, best_lag, r_at_lag
from engine.targets.teacher import read_media_audio
from engine.targets.visemes import frame_times, inner_lip_opening

logger = logging.getLogger(__name__)

MAX_OFFSET_S = 0.2
MIN_OFFSET_R = 0.3  # below this the opening does not follow the loudness well enough to say
MIN_OFFSET_GAIN = 0.1  # the shifted r must beat the unshifted one by this much
MIN_OFFSET_SECONDS = 2.0  # shorter clips give lag peaks too noisy to trust
MIN_SECONDS = 1.0
MIN_USABLE = 0.5  # a clip with less than half its frames usable is dropped
MAX_YAW_DEG = 35.0
MAX_MOUTH_SPEED = 0.25  # IOD per 40 ms frame: faster mouth points are tracking glitches


@dataclass
class TalkingClip:
    name: str
    group: str  # speaker group (engine.data.speakers)
    split: str  # "train" | "val"
    hops: np.ndarray  # (H, 15) MFCC and prosody per 10 ms hop
    targets: np.ndarray  # (T, 68, 2) frontal landmarks at 25 fps, NaN-free
    usable: np.ndarray  # (T,) bool: frames the loss may read
    neutral: np.ndarray  # (68, 2) the speaker's neutral face
    offset_s: float  # video shifted by this much (> 0: video was late)
    raw_lag_s: float = 0.0  # the best lag found, before the median is taken off
    offset_r: float | None = None  # r at that lag
    unshifted_r: float | None = None  # r at the median lag (no offset)

    @property
    def frames(self) -> int:
        return len(self.targets)

    def windows(self, spec: WindowSpec) -> np.ndarray:
        return video_frame_windows(self.hops[:, :MFCC_N_COEFFS], self.frames, spec)


@dataclass
class TalkingSet:
    clips: list[TalkingClip]
    skipped: list[list[str]] = field(default_factory=list)  # [path, reason]
    median_lag_s: float = 0.0
    shifted: bool = True  # A/V offsets applied (False: the clips' timing as recorded)

    def select(self, split: str) -> list[TalkingClip]:
        return [c for c in self.clips if c.split == split]

    def report(self) -> dict:
        """What was used, shifted and dropped, for the model card and the training log."""
        return {
            "median_lag_ms": round(1000 * self.median_lag_s),
            "clips": {
                c.name: {
                    "group": c.group,
                    "split": c.split,
                    "frames": c.frames,
                    "usable": int(c.usable.sum()),
                    "offset_ms": round(1000 * c.offset_s),
                    "raw_lag_ms": round(1000 * c.raw_lag_s),
                    "offset_r": None if c.offset_r is None else round(c.offset_r, 3),
                    "unshifted_r": None if c.unshifted_r is None else round(c.unshifted_r, 3),
                }
                for c in self.clips
            },
            "skipped": self.skipped,
        }


@dataclass(frozen=True)
class MouthSync:
    """The tracked opening (at ``times``) against the audio's loudness at those times."""

    times: np.ndarray
    opening: np.ndarray
    level: np.ndarray

    @classmethod
    def of(cls, times: np.ndarray, opening: np.ndarray, hops: np.ndarray) -> "MouthSync":
        hop_s = 1.0 / (MFCC_HOPS_PER_VIDEO_FRAME * VIDEO_FPS)
        level = np.interp(
            times, (np.arange(len(hops)) + 0.5) * hop_s, relative_loudness(hops[:, -N_PROSODY])
        )
        return cls(times, opening, level)

    def best(self) -> Sync:
        """lag > 0 when the mouth moves later than the sound."""
        return best_lag(self.times, self.level, self.opening, MAX_OFFSET_S)

    def at(self, lag_s: float) -> float | None:
        return r_at_lag(self.times, self.level, self.opening, lag_s)


def clip_offset(sync: MouthSync, median_lag_s: float) -> tuple[float, Sync, float | None]:
    """(offset to apply, the best sync, r at the median lag): see the module doc, step 2."""
    best, unshifted = sync.best(), sync.at(median_lag_s)
    clear = (
        best.r is not None
        and sync.times[-1] - sync.times[0] >= MIN_OFFSET_SECONDS
        and best.r >= MIN_OFFSET_R
        and best.r >= (unshifted if unshifted is not None else -1.0) + MIN_OFFSET_GAIN
    )
    return (best.lag_s - median_lag_s if clear else 0.0), best, unshifted


def resample_track(track: FaceTrack, frames: int, offset_s: float) -> tuple[np.ndarray, np.ndarray]:
    """Tracked frontal landmarks at the centres of ``frames`` 25 fps frames (+ offset):
    (T, 68, 2) and the (T,) mask of frames whose nearest tracked frame was usable."""
    times = track.times - track.times[0]
    good = track.valid & (np.abs(rotation_angles(track.rotation)[:, 0]) <= MAX_YAW_DEG)
    wanted = frame_times(frames) + offset_s
    nearest = np.clip(np.searchsorted(times, wanted), 1, len(times) - 1)
    nearest -= (wanted - times[nearest - 1]) < (times[nearest] - wanted)
    usable = good[nearest] & (wanted >= times[0]) & (wanted <= times[-1])
    points = track.frontal68[..., :2].astype(np.float64)
    known = np.flatnonzero(track.valid)
    flat = points[known].reshape(len(known), -1)
    out = np.stack([np.interp(wanted, times[known], flat[:, j]) for j in range(flat.shape[1])], 1)
    out = out.reshape(frames, 68, 2)
    mouth = out[:, MOUTH.start : MOUTH.stop]
    speed = np.linalg.norm(np.diff(mouth - mouth.mean(axis=1, keepdims=True), axis=0), axis=-1)
    jump = np.concatenate([[False], speed.max(axis=1) > MAX_MOUTH_SPEED])
    usable &= ~(jump | np.roll(jump, -1))
    return out.astype(np.float32), usable


def _prepare(path: Path, cache_dir: Path | None):
    faces = faces_in_video(path, cache_dir=cache_dir)
    if sum(n > 1 for n in faces) * 2 > len(faces):
        raise EngineError(
            f"several faces ({max(faces)} in {sum(n > 1 for n in faces)} of {len(faces)} sampled "
            "frames): whose mouth the speech moves is unknown"
        )
    track = track_video(path, cache_dir=cache_dir)
    if track.valid.sum() < 2:
        raise EngineError("no face was tracked")
    audio = read_media_audio(path, SAMPLE_RATE)
    hops = compute_hop_features(audio)
    video_s = float(track.times[-1] - track.times[0]) + 1.0 / VIDEO_FPS
    frames = int(min(len(audio) / SAMPLE_RATE, video_s) * VIDEO_FPS)
    if frames < MIN_SECONDS * VIDEO_FPS:
        raise EngineError(f"too short: {frames / VIDEO_FPS:.2f} s of audio and video together")
    valid = track.valid
    times = (track.times - track.times[0])[valid]
    opening = inner_lip_opening(track.frontal68[valid][:, MOUTH.start : MOUTH.stop, :2])
    return track, hops, frames, MouthSync.of(times, opening.astype(np.float64), hops)


def load_talking(
    folders: list[Path], cache_dir: Path | None = None, shift: bool = True
) -> TalkingSet:
    """Every usable clip under ``folders`` as training material (see the module doc);
    ``shift=False`` leaves every clip's timing as recorded (the ablation)."""
    prepared, skipped = [], []
    for folder in folders:
        clips, loaded = load_clips(Path(folder))
        skipped += [[str(p), why] for p, why in loaded.skipped]
        for clip in clips:
            try:
                prepared.append((clip.path, *_prepare(clip.path, cache_dir)))
            except EngineError as e:
                skipped.append([str(clip.path), str(e)])
    bests = [sync.best() for *_, sync in prepared]
    lags = [b.lag_s for b in bests if b.r is not None and b.r >= MIN_OFFSET_R]
    median = float(np.median(lags)) if lags else 0.0
    out = []
    for path, track, hops, frames, sync in prepared:
        offset, best, unshifted = clip_offset(sync, median)
        offset = offset if shift else 0.0
        targets, usable = resample_track(track, frames, offset)
        if usable.mean() < MIN_USABLE:
            skipped.append(
                [str(path), f"only {usable.mean():.0%} of frames tracked frontally and smoothly"]
            )
            continue
        out.append(
            TalkingClip(
                name=path.stem,
                group=speaker_group(path.stem),
                split=split_of(path.stem),
                hops=hops[: MFCC_HOPS_PER_VIDEO_FRAME * frames + 1].astype(np.float32),
                targets=targets,
                usable=usable,
                neutral=neutral_face(track)[:, :2].astype(np.float32),
                offset_s=offset,
                raw_lag_s=best.lag_s,
                offset_r=best.r,
                unshifted_r=unshifted,
            )
        )
    if not out:
        raise EngineError(f"no usable talking clips under {', '.join(map(str, folders))}")
    for path, why in skipped:
        logger.info("talking clips: skipped %s: %s", Path(path).name, why)
    return TalkingSet(out, skipped, median, shift)
