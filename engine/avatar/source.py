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

PHOTO_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff", ".jp2"}
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
    if not MIN_SECONDS <= max_seconds <= MAX_SECONDS:
        raise AvatarSourceError(
            f"max_seconds must be between {MIN_SECONDS:.0f} and {MAX_SECONDS:.0f}, got {max_seconds}"
        )
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
        raise AvatarSourceError(
            f"cannot read {path} as an image: it is damaged, not really a {path.suffix} file, "
            "or larger than OpenCV's pixel limit; save it as a JPEG or PNG of at most a few "
            "thousand pixels a side"
        )
    return _checked_photo(_fit_size(cv2.cvtColor(image, cv2.COLOR_BGR2RGB))[None], path)


def _checked_photo(frames: np.ndarray, path: Path) -> Source:
    height, width = frames.shape[1:3]
    if min(height, width) < MIN_PHOTO_SIDE:
        raise AvatarSourceError(
            f"{path} is {width}x{height} pixels; photos need at least "
            f"{MIN_PHOTO_SIDE} on each side: use a larger photo"
        )
    return Source(frames, "photo", 0.0)


def _upright(frame: "av.VideoFrame") -> np.ndarray:
    """Decoded frame -> (H, W, 3) uint8 RGB as it is meant to be shown (phone videos carry
    a display rotation, counterclockwise degrees, that decoders do not apply)."""
    rgb = frame.to_ndarray(format="rgb24")
    turns = round((frame.rotation or 0) / 90) % 4
    return _fit_size(np.rot90(rgb, k=turns) if turns else rgb)


class Resampler:
    """Frames in presentation order at any rate -> frames at ``fps``, as they arrive.

    Tick k (k / fps seconds after the first frame) shows the latest frame whose time is
    not after it; the last frame is shown for the source's median frame interval. Only frames that
    some tick shows are converted (``convert`` is called once for each), and at most
    ``max_ticks`` frames are kept, so memory does not depend on the source's rate.
    """

    def __init__(self, fps: int, max_ticks: int, convert=lambda frame: frame) -> None:
        self.fps, self.max_ticks, self.convert = fps, max_ticks, convert
        self.frames: list[np.ndarray] = []
        self._first: float | None = None
        self._last: tuple[float, object] | None = None
        self._intervals: list[float] = []  # between source frames, for the last one's

    @property
    def full(self) -> bool:
        return len(self.frames) >= self.max_ticks

    def push(self, seconds: float, frame) -> None:
        if self._first is None:
            self._first = seconds
        t = seconds - self._first
        if self._last is not None:
            if t > self._last[0]:
                self._intervals.append(t - self._last[0])
            self._emit_until(t)
        self._last = (t, frame)

    def finish(self) -> np.ndarray:
        """(T, H, W, 3) frames at fps; T = 0 when nothing was pushed."""
        if self._last is not None:
            interval = float(np.median(self._intervals)) if self._intervals else 1 / self.fps
            self._emit_until(self._last[0] + interval)
            self._last = None
        return np.stack(self.frames) if self.frames else np.zeros((0, 0, 0, 3), np.uint8)

    def _emit_until(self, end: float) -> None:
        """Show the held frame at every tick before ``end`` seconds."""
        converted = None
        while not self.full and len(self.frames) / self.fps < end - 1e-6:
            if converted is None:
                assert self._last is not None  # callers hold a frame
                converted = self.convert(self._last[1])
            self.frames.append(converted)


def _read_video(path: Path, max_seconds: float) -> Source:
    resampler = Resampler(VIDEO_FPS, round(max_seconds * VIDEO_FPS), convert=_upright)
    decoded = 0
    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise AvatarSourceError(f"{path} has no video stream; give a video or a photo")
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"
            rate = float(stream.average_rate or stream.guessed_rate or VIDEO_FPS)
            for frame in container.decode(stream):
                seconds = float(frame.pts * stream.time_base) if frame.pts is not None else None
                resampler.push(decoded / rate if seconds is None else seconds, frame)
                decoded += 1
                if resampler.full:
                    break
            frames = resampler.finish()
    except av.error.FFmpegError as e:
        raise AvatarSourceError(
            f"cannot decode {path} as a video ({e}): give a video (mp4, mov, mkv, webm, ...) "
            "or a photo (jpg, png, webp, bmp, tiff)"
        ) from e
    if not decoded:
        raise AvatarSourceError(f"{path} holds no video frames")
    if decoded == 1:
        return _checked_photo(frames[:1], path)
    if len(frames) < MIN_SECONDS * VIDEO_FPS:
        raise AvatarSourceError(
            f"{path} is {len(frames) / VIDEO_FPS:.1f} s long; an avatar needs at least "
            f"{MIN_SECONDS:.0f} s of video (or give a photo)"
        )
    return Source(frames, "video", rate)


def resample(timed: list[tuple[float, np.ndarray]], fps: int, max_seconds: float = MAX_SECONDS):
    """(seconds, frame) pairs in presentation order -> (T, H, W, 3) frames at ``fps``."""
    resampler = Resampler(fps, round(max_seconds * fps))
    for seconds, frame in timed:
        resampler.push(seconds, frame)
    return resampler.finish()
