"""Avatar bundles on disk (DESIGN §5): a directory with ``manifest.json`` and its data.

Format 2, written by ``evp avatar build`` (engine.avatar.build):

    manifest.json          what is in the bundle, its source and licence, crop box,
                           generator layout, held-out frames and validation figures
    loop.mp4               the target video, 25 fps, played forward then backward
    track.npz              per frame: tracked iBUG-68 image landmarks (T, 68, 2), the
                           smoothed pose (rotation (T, 3, 3), translation (T, 3),
                           scale (T,)), the outside-face edge maps on the crop
                           (T, S, S/8 bit-packed); once: the neutral face (68, 3)
    generator.safetensors  the per-avatar generator (PyTorch), its layout in metadata
    generator.onnx         the same network for ONNX Runtime
    validation.png         real vs generated held-out frames
"""

import json
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path

import av
import numpy as np

from engine.avatar.crop import CropBox
from engine.errors import AvatarError
from engine.face.pose import Pose

#: The bundled avatars (the repository's avatars/): the default for every --avatars.
DEFAULT_AVATARS = Path(__file__).resolve().parents[2] / "avatars"
FORMAT_VERSION = 2
MANIFEST = "manifest.json"
TRACK_FILE = "track.npz"
GENERATOR_FILE = "generator.safetensors"
GENERATOR_ONNX = "generator.onnx"
LOOP_FILE = "loop.mp4"
VALIDATION_PNG = "validation.png"
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
    kind: str  # "video" or "photo" (a still with a synthesised idle loop)
    source: str
    licence: str
    fps: int
    frame_count: int
    width: int
    height: int
    frames_file: str
    crop: dict  # {"x", "y", "size"}: the square face crop in frame pixels
    generator: dict  # {"size", "widths", "blocks", "weights", "onnx"[, "onnx_int8", ...]}
    held_out: list  # loop frame indices kept out of generator training
    validation: dict = field(default_factory=dict)  # engine.evaluation.avatar figures
    build: dict = field(default_factory=dict)  # command, steps, seconds, versions

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
                f"(this build reads {FORMAT_VERSION}); rebuild it with `evp avatar build`"
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
                crop={k: int(data["crop"][k]) for k in ("x", "y", "size")},
                generator=dict(data["generator"]),
                held_out=[int(i) for i in data["held_out"]],
                validation=dict(data.get("validation", {})),
                build=dict(data.get("build", {})),
            )
        except KeyError as e:
            raise AvatarError(f"{path} lacks the field {e.args[0]!r}: rebuild the avatar") from e
        except (TypeError, ValueError) as e:
            raise AvatarError(f"{path} has a malformed field ({e}): rebuild the avatar") from e

    @property
    def crop_box(self) -> CropBox:
        return CropBox(**self.crop)

    def to_json(self) -> dict:
        return asdict(self)

    def write(self, directory: Path) -> None:
        write_atomic(directory / MANIFEST, json.dumps(self.to_json(), indent=2) + "\n")


def write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".partial")
    tmp.write_text(text)
    tmp.replace(path)


@dataclass(frozen=True)
class AvatarTrack:
    """Per-frame geometry of the loop. T frames, S the generator size."""

    landmarks: np.ndarray  # (T, 68, 2) float32 tracked image landmarks, pixels
    pose: Pose  # smoothed: (T, 3, 3), (T, 3), (T,)
    neutral: np.ndarray  # (68, 3) frontal neutral face: x, y for the model, z the depth
    edges: np.ndarray  # (T, S, S/8) uint8 bit-packed outside-face edges on the crop

    def edge_map(self, index: int) -> np.ndarray:
        """(S, S) uint8, 255 on edges."""
        return np.unpackbits(self.edges[index], axis=-1) * np.uint8(255)

    def save(self, path: Path) -> None:
        tmp = path.with_name(path.name + ".partial.npz")
        np.savez_compressed(
            tmp,
            landmarks=self.landmarks.astype(np.float32),
            rotation=self.pose.rotation.astype(np.float32),
            translation=self.pose.translation.astype(np.float32),
            scale=self.pose.scale.astype(np.float32),
            neutral=self.neutral.astype(np.float32),
            edges=self.edges,
        )
        tmp.replace(path)

    @classmethod
    def load(cls, path: Path, frame_count: int) -> "AvatarTrack":
        try:
            with np.load(path) as data:
                track = cls(
                    landmarks=data["landmarks"],
                    pose=Pose(data["rotation"], data["translation"], data["scale"]),
                    neutral=data["neutral"],
                    edges=data["edges"],
                )
        except FileNotFoundError as e:
            raise AvatarError(f"missing {path}: rebuild the avatar with `evp avatar build`") from e
        except (OSError, ValueError, KeyError) as e:
            raise AvatarError(f"{path} is unreadable ({e}): rebuild the avatar") from e
        lengths = {len(track.landmarks), len(track.pose.scale), len(track.edges)}
        if lengths != {frame_count}:
            raise AvatarError(f"{path} holds {lengths} frames, the manifest {frame_count}")
        return track


def pack_edges(edges: np.ndarray) -> np.ndarray:
    """(..., S, S) uint8 edge maps (0 or 255) -> (..., S, S/8) bit-packed."""
    return np.packbits(edges > 0, axis=-1)


class Avatar:
    """A loaded avatar: manifest, loop frames (T, H, W, 3) uint8 RGB, per-frame track."""

    def __init__(
        self, manifest: AvatarManifest, frames: np.ndarray, track: AvatarTrack, directory: Path
    ) -> None:
        if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
            raise AvatarError(f"avatar frames must be (T, H, W, 3) uint8, got {frames.shape}")
        self.manifest = manifest
        self.frames = frames
        self.track = track
        self.directory = directory

    @property
    def generator_onnx(self) -> Path:
        return self.directory / self.manifest.generator["onnx"]

    @property
    def generator_onnx_int8(self) -> Path | None:
        """The INT8 generator (engine.avatar.quantize), if the bundle has one."""
        name = self.manifest.generator.get("onnx_int8")
        return None if name is None else self.directory / name

    @property
    def generator_weights(self) -> Path:
        return self.directory / self.manifest.generator["weights"]

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
        track = AvatarTrack.load(directory / TRACK_FILE, manifest.frame_count)
        return cls(manifest, frames, track, directory)


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
        return AvatarManifest.read(self.directory(name))

    def get(self, name: str) -> Avatar:
        """Load (blocking: decodes video) or return the cached avatar."""
        if name not in self._loaded:
            self._loaded[name] = Avatar.load(self.directory(name))
        return self._loaded[name]

    def directory(self, name: str) -> Path:
        """The bundle directory of an existing avatar (the name validated)."""
        directory = self.root / validate_name(name)
        if not (directory / MANIFEST).is_file():
            raise AvatarError(
                f"no avatar named {name!r}; available: {', '.join(self.names()) or 'none'}"
            )
        return directory
