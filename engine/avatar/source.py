"""Read an avatar's source: a video resampled to 25 fps, or a single photo.

    read_source(path)  -> Source(frames (T, H, W, 3) uint8 RGB at 25 fps, kind, fps_in)

Videos of any container, codec and frame rate are decoded with PyAV and resampled in time
by taking, for every 40 ms tick, the frame shown at that moment (the latest frame whose
timestamp is not after it). Frames larger than MAX_SIDE are scaled down. Photos are read
by OpenCV. Everything a user can get wrong is an AvatarSourceError that names the problem
and the fix.
"""

from dataclasses import dataclass
from pathlib import Path

import av
import cv2
import numpy as np

from engine.constants import VIDEO_FPS
from engine.errors import AvatarError

PHOTO_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff"}
MIN_SECONDS = 2.0
MAX_SECONDS = 30.0  # longer videos are cut: 750 frames are plenty for the generator
MAX_SIDE = 1280  # larger frames are scaled down (memory, speed)
MAX_FILE_BYTES = 2 << 30
MIN_PHOTO_SIDE = 128


class AvatarSourceError(AvatarError):
    """A source video or photo that cannot become an avatar."""


@dataclass(frozen=True)
class Source:
    frames: np.ndarray  # (T, H, W, 3) uint8 RGB, 25 fps for videos, T = 1 for photos
    kind: str  # "video" or "photo"
    fps_in: float  # the source's own frame rate (0 for photos)

    @property
    def seconds(self) -> float:
        return len(self.frames) / VIDEO_FPS


def read_source(path: Path, max_seconds: float = MAX_SECONDS) -> Source:
    path = Path(path)
    if not path.is_file():
        raise AvatarSourceError(f"no such file: {path}")
    size = path.stat().st_size
    if size == 0:
        raise AvatarSourceError(f"{path} is empty")
    if size > MAX_FILE_BYTES:
        raise AvatarSourceError(
            f"{path} is {size / 2**30:.1f} GiB; the limit is {MAX_FILE_BYTES / 2**30:.0f} GiB: "
            "cut a shorter clip (a 10-60 s talking clip is what the avatar needs)"
        )
    if path.suffix.lower() in PHOTO_SUFFIXES:
        return _read_photo(path)
    return _read_video(path, max_seconds)


def _fit_size(frame: np.ndarray) -> np.ndarray:
    """Scale down to MAX_SIDE and crop to even sides (H.264 in yuv420p needs them)."""
    height, width = frame.shape[:2]
    scale = MAX_SIDE / max(height, width)
    if scale < 1:
        size = (round(width * scale), round(height * scale))
        frame = cv2.resize(frame, size, interpolation=cv2.INTER_AREA)
        height, width = frame.shape[:2]
    return np.ascontiguousarray(frame[: height // 2 * 2, : width // 2 * 2])


def _read_photo(path: Path) -> Source:
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise AvatarSourceError(f"cannot read {path} as an image (is it a valid {path.suffix}?)")
    if min(image.shape[:2]) < MIN_PHOTO_SIDE:
        raise AvatarSourceError(
            f"{path} is {image.shape[1]}x{image.shape[0]} pixels; photos need at least "
            f"{MIN_PHOTO_SIDE} on each side: use a larger photo"
        )
    return Source(_fit_size(cv2.cvtColor(image, cv2.COLOR_BGR2RGB))[None], "photo", 0.0)


def _read_video(path: Path, max_seconds: float) -> Source:
    timed: list[tuple[float, np.ndarray]] = []
    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise AvatarSourceError(f"{path} has no video stream; give a video or a photo")
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"
            rate = float(stream.average_rate or stream.guessed_rate or VIDEO_FPS)
            for index, frame in enumerate(container.decode(stream)):
                seconds = (
                    float(frame.pts * stream.time_base) if frame.pts is not None else index / rate
                )
                if timed and seconds > timed[0][0] + max_seconds:
                    break
                timed.append((seconds, _fit_size(frame.to_ndarray(format="rgb24"))))
    except av.error.FFmpegError as e:
        raise AvatarSourceError(f"cannot decode {path}: {e}; is it a video file?") from e
    if not timed:
        raise AvatarSourceError(f"{path} holds no video frames")
    if len(timed) == 1:
        return Source(timed[0][1][None], "photo", 0.0)
    frames = resample(timed, VIDEO_FPS)
    if len(frames) < MIN_SECONDS * VIDEO_FPS:
        raise AvatarSourceError(
            f"{path} is {len(frames) / VIDEO_FPS:.1f} s long; an avatar needs at least "
            f"{MIN_SECONDS:.0f} s of video (or give a photo)"
        )
    return Source(frames, "video", rate)


def resample(timed: list[tuple[float, np.ndarray]], fps: int) -> np.ndarray:
    """(seconds, frame) pairs in decode order -> (T, H, W, 3) frames at ``fps``.

    Tick k (at k / fps seconds after the first frame) shows the latest frame whose time
    is not after it; the clip ends with its last frame's display interval.
    """
    times = np.array([t for t, _ in timed]) - timed[0][0]
    order = np.argsort(times, kind="stable")
    times = times[order]
    interval = np.median(np.diff(times)) if len(times) > 1 else 1 / fps
    duration = times[-1] + interval
    ticks = np.arange(int(np.floor(duration * fps + 1e-6))) / fps
    chosen = np.clip(np.searchsorted(times, ticks + 1e-6, side="right") - 1, 0, len(times) - 1)
    return np.stack([timed[order[i]][1] for i in chosen])
