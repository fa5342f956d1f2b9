"""Generic talking-face clips: any folder of videos with their own audio track."""

from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np

from engine.data.records import LoadResult
from engine.errors import EngineError

VIDEO_SUFFIXES = {".mp4", ".mov", ".avi", ".mkv", ".webm"}
MAX_AV_MISMATCH_S = 0.5  # longer differences between the tracks mean a broken file
MIN_AUDIO_RMS = 1e-4  # -80 dBFS: below this the "audio" is a silent placeholder track


@dataclass(frozen=True)
class Clip:
    path: Path
    speaker: str  # the file stem: one person per clip unless told otherwise
    fps: float
    frames: int
    width: int
    height: int
    video_seconds: float
    audio_seconds: float
    audio_rate: int
    audio_rms: float


def probe_clip(path: Path) -> Clip:
    """Read a clip's stream facts; ValueError when it is not a usable talking clip."""
    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise ValueError("no video stream")
            if not container.streams.audio:
                raise ValueError("no audio stream: talking clips need their own audio")
            video, audio = container.streams.video[0], container.streams.audio[0]
            fps = float(video.average_rate or video.guessed_rate or 0)
            if video.duration:
                video_seconds = float(video.duration * video.time_base)
            else:
                video_seconds = float(container.duration or 0) / 1e6
            if audio.duration:
                audio_seconds = float(audio.duration * audio.time_base)
            else:
                audio_seconds = video_seconds
            frames = video.frames or round(video_seconds * fps)
            width, height, audio_rate = video.width, video.height, audio.rate
        rms = audio_rms(path)
    except av.error.FFmpegError as e:
        raise ValueError(f"unreadable media: {e}") from e
    if rms < MIN_AUDIO_RMS:
        raise ValueError(f"the audio track is silent (rms {rms:.5f})")
    if fps <= 0:
        raise ValueError("the video stream has no frame rate")
    if abs(video_seconds - audio_seconds) > MAX_AV_MISMATCH_S:
        raise ValueError(
            f"audio ({audio_seconds:.2f} s) and video ({video_seconds:.2f} s) durations differ "
            f"by more than {MAX_AV_MISMATCH_S} s"
        )
    return Clip(
        path=path,
        speaker=path.stem,
        fps=fps,
        frames=frames,
        width=width,
        height=height,
        video_seconds=video_seconds,
        audio_seconds=audio_seconds,
        audio_rate=audio_rate,
        audio_rms=rms,
    )


def audio_rms(path: Path) -> float:
    """RMS of a file's first audio stream, all channels, as floats in [-1, 1]."""
    total, count = 0.0, 0
    with av.open(str(path)) as container:
        resampler = av.AudioResampler(format="flt", layout="mono")
        for frame in container.decode(audio=0):
            for mono in resampler.resample(frame):
                samples = mono.to_ndarray().astype(np.float64)
                total += float(np.square(samples).sum())
                count += samples.size
    return float(np.sqrt(total / count)) if count else 0.0


def load_clips(root: Path) -> tuple[list[Clip], LoadResult]:
    """Every usable clip under ``root``; the others skipped with their reasons."""
    if not root.is_dir():
        raise EngineError(f"clip folder {root} does not exist")
    result, clips = LoadResult(), []
    for path in sorted(root.rglob("*")):
        if path.suffix.lower() not in VIDEO_SUFFIXES:
            continue
        try:
            clips.append(probe_clip(path))
        except ValueError as e:
            result.skip(path, str(e))
    if not clips:
        raise EngineError(f"no usable talking clips under {root} ({len(result.skipped)} skipped)")
    return clips, result
