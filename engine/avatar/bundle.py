"""Avatar bundles on disk (DESIGN §5): a directory with ``manifest.json`` and its loop.

This module reads what the renderer needs today: the manifest and the looped target
frames. Later formats add landmarks, poses, edge maps and generator weights; the
``format_version`` field tells readers what to expect.
"""

import json
import re
from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np

from engine.errors import AvatarError

FORMAT_VERSION = 1
MANIFEST = "manifest.json"
_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")


def validate_name(name: str) -> str:
    """Avatar names are directory names: lower-case letters, digits, '-' and '_'."""
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise AvatarError(
            f"invalid avatar name {name!r}: use 1-64 characters of a-z, 0-9, '-' or '_', "
            "starting with a letter or digit"
        )
    return name


@dataclass(frozen=True)
class AvatarManifest:
    name: str
    format_version: int
    kind: str  # "placeholder" (a still with synthetic motion) or "video"
    source: str
    licence: str
    fps: int
    frame_count: int
    width: int
    height: int
    frames_file: str

    @classmethod
    def read(cls, directory: Path) -> "AvatarManifest":
        path = directory / MANIFEST
        try:
            data = json.loads(path.read_text())
        except FileNotFoundError as e:
            raise AvatarError(f"{directory} is not an avatar bundle: no {MANIFEST}") from e
        except json.JSONDecodeError as e:
            raise AvatarError(f"{path} is not valid JSON: {e}") from e
        if data.get("format_version") != FORMAT_VERSION:
            raise AvatarError(
                f"{path}: format_version {data.get('format_version')!r} is not supported "
                f"(this build reads {FORMAT_VERSION}); rebuild the avatar"
            )
        try:
            return cls(
                name=validate_name(data["name"]),
                format_version=data["format_version"],
                kind=str(data["kind"]),
                source=str(data["source"]),
                licence=str(data["licence"]),
                fps=int(data["fps"]),
                frame_count=int(data["frame_count"]),
                width=int(data["width"]),
                height=int(data["height"]),
                frames_file=str(data["frames_file"]),
            )
        except KeyError as e:
            raise AvatarError(f"{path} lacks the field {e.args[0]!r}") from e

    def to_json(self) -> dict:
        return dict(self.__dict__)


class Avatar:
    """A loaded avatar: its manifest and its loop frames, (T, H, W, 3) uint8 RGB."""

    def __init__(self, manifest: AvatarManifest, frames: np.ndarray) -> None:
        if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
            raise AvatarError(f"avatar frames must be (T, H, W, 3) uint8, got {frames.shape}")
        self.manifest = manifest
        self.frames = frames

    @property
    def size(self) -> tuple[int, int]:
        """(width, height) in pixels."""
        return self.frames.shape[2], self.frames.shape[1]

    def loop_index(self, tick: int) -> int:
        """Forward then backward through the frames, so the loop never jumps."""
        count = self.frames.shape[0]
        if count == 1:
            return 0
        period = 2 * (count - 1)
        position = tick % period
        return position if position < count else period - position

    def frame_at(self, tick: int) -> np.ndarray:
        return self.frames[self.loop_index(tick)]

    @classmethod
    def load(cls, directory: Path) -> "Avatar":
        manifest = AvatarManifest.read(directory)
        frames = read_video_frames(directory / manifest.frames_file)
        if frames.shape[0] != manifest.frame_count:
            raise AvatarError(
                f"{directory}: manifest says {manifest.frame_count} frames, "
                f"{manifest.frames_file} has {frames.shape[0]}"
            )
        return cls(manifest, frames)


def read_video_frames(path: Path) -> np.ndarray:
    """Decode every frame of a video file to (T, H, W, 3) uint8 RGB."""
    try:
        with av.open(str(path)) as container:
            frames = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
    except (FileNotFoundError, av.error.FileNotFoundError) as e:
        raise AvatarError(f"missing video file {path}") from e
    except av.error.FFmpegError as e:
        raise AvatarError(f"cannot decode {path}: {e}") from e
    if not frames:
        raise AvatarError(f"{path} holds no video frames")
    return np.stack(frames)


def write_video_frames(path: Path, frames: np.ndarray, fps: int, crf: int = 18) -> None:
    """Encode (T, H, W, 3) uint8 RGB frames as H.264 (yuv420p), written atomically."""
    tmp = path.with_name(path.name + ".partial")
    with av.open(str(tmp), mode="w", format="mp4") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height = frames.shape[2], frames.shape[1]
        stream.pix_fmt = "yuv420p"
        stream.options = {"crf": str(crf), "preset": "slow"}
        for frame in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    tmp.replace(path)


class AvatarLibrary:
    """The avatars under one root directory, each loaded once on first use."""

    def __init__(self, root: Path) -> None:
        if not root.is_dir():
            raise AvatarError(f"avatar directory {root} does not exist")
        self.root = root
        self._loaded: dict[str, Avatar] = {}

    def names(self) -> list[str]:
        return sorted(
            p.name
            for p in self.root.iterdir()
            if _NAME.fullmatch(p.name) and (p / MANIFEST).is_file()
        )

    def manifest(self, name: str) -> AvatarManifest:
        return AvatarManifest.read(self._directory(name))

    def get(self, name: str) -> Avatar:
        """Load (blocking: decodes video) or return the cached avatar."""
        if name not in self._loaded:
            self._loaded[name] = Avatar.load(self._directory(name))
        return self._loaded[name]

    def _directory(self, name: str) -> Path:
        directory = self.root / validate_name(name)
        if not (directory / MANIFEST).is_file():
            raise AvatarError(
                f"no avatar named {name!r}; available: {', '.join(self.names()) or 'none'}"
            )
        return directory
