"""Track a face through a video or photo: 478 FaceMesh points, iBUG-68, pose, frontal.

Frames where MediaPipe finds no face are marked; gaps of up to ``max_gap`` frames between
found frames are filled by linear interpolation of the raw points (and marked as such);
longer gaps and the ends stay NaN and are reported. Results are cached by the content hash
of the input file, so tracking a file again is instant.
"""

import hashlib
import itertools
import json
import logging
import os
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

import av
import numpy as np

from engine.errors import EngineError
from engine.face.landmarks68 import RIGID_MEDIAPIPE, to_ibug68
from engine.face.pose import Pose, frontal_frame, similarity_fit

logger = logging.getLogger(__name__)

TRACKER_VERSION = 1  # bump when anything changes what a cached track contains
N_POINTS = 478


class TrackingError(EngineError):
    """Media that cannot be tracked: unreadable, or no face anywhere in it."""


@dataclass(frozen=True)
class TrackOptions:
    max_gap: int = 5
    """Longest run of faceless frames (between found frames) that is interpolated."""
    min_detection_confidence: float = 0.5
    min_tracking_confidence: float = 0.5


@dataclass(frozen=True)
class TrackReport:
    frames: int
    found: int
    interpolated: int
    missing: int  # neither found nor interpolated: NaN in every array


@dataclass(frozen=True)
class FaceTrack:
    """Everything tracked in one clip. T frames; image coordinates in pixels."""

    points: np.ndarray  # (T, 478, 3) float32: x, y in pixels, z (depth) in pixel units
    found: np.ndarray  # (T,) bool: MediaPipe found a face in this frame
    valid: np.ndarray  # (T,) bool: found or interpolated
    rotation: np.ndarray  # (T, 3, 3)
    translation: np.ndarray  # (T, 3)
    scale: np.ndarray  # (T,) pixels per frontal unit
    reference: np.ndarray  # (478, 3) the clip's canonical shape in frontal space
    frontal: np.ndarray  # (T, 478, 3) pose-free points in frontal space (engine.face.pose)
    times: np.ndarray  # (T,) seconds of each frame
    width: int
    height: int

    @property
    def landmarks68(self) -> np.ndarray:
        """(T, 68, 3) iBUG landmarks in image space."""
        return to_ibug68(self.points)

    @property
    def frontal68(self) -> np.ndarray:
        """(T, 68, 3) iBUG landmarks in frontal space."""
        return to_ibug68(self.frontal)

    @property
    def pose(self) -> Pose:
        return Pose(self.rotation, self.translation, self.scale)

    def report(self) -> TrackReport:
        frames = len(self.found)
        found = int(self.found.sum())
        valid = int(self.valid.sum())
        return TrackReport(frames, found, valid - found, frames - valid)

    def save(self, path: Path) -> None:
        tmp = path.with_name(path.name + ".partial.npz")
        np.savez_compressed(tmp, **{k: v for k, v in asdict(self).items()})
        tmp.replace(path)

    @classmethod
    def load(cls, path: Path) -> "FaceTrack":
        with np.load(path) as data:
            fields = {k: data[k] for k in data.files}
        fields["width"], fields["height"] = int(fields["width"]), int(fields["height"])
        return cls(**fields)


class FaceMesh:
    """MediaPipe FaceMesh (legacy solutions API, models inside the 0.10.21 wheel)."""

    def __init__(self, static_images: bool, options: TrackOptions = TrackOptions()) -> None:
        try:
            import mediapipe as mp
        except ImportError as e:
            raise EngineError(
                "face tracking needs mediapipe 0.10.21: pip install -e '.[avatar]'"
            ) from e
        self._mesh = mp.solutions.face_mesh.FaceMesh(
            static_image_mode=static_images,
            max_num_faces=1,
            refine_landmarks=True,
            min_detection_confidence=options.min_detection_confidence,
            min_tracking_confidence=options.min_tracking_confidence,
        )

    def __enter__(self) -> "FaceMesh":  # noqa: PYI034 - typing.Self needs Python 3.11
        return self

    def __exit__(self, *exc) -> None:
        self._mesh.close()

    def points(self, rgb: np.ndarray) -> np.ndarray | None:
        """(H, W, 3) uint8 RGB -> (478, 3) pixel-space points, or None without a face."""
        result = self._mesh.process(rgb)
        if not result.multi_face_landmarks:
            return None
        height, width = rgb.shape[:2]
        landmarks = result.multi_face_landmarks[0].landmark
        normalised = np.array([(p.x, p.y, p.z) for p in landmarks], dtype=np.float64)
        return normalised * np.array([width, height, width])


def read_frames(path: Path) -> Iterator[tuple[float | None, np.ndarray]]:
    """Decode a video file: (time in seconds, None without a timestamp; (H, W, 3) uint8
    RGB) per frame."""
    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise TrackingError(f"{path} has no video stream")
            stream = container.streams.video[0]
            for frame in container.decode(stream):
                seconds = float(frame.pts * stream.time_base) if frame.pts is not None else None
                yield seconds, frame.to_ndarray(format="rgb24")
    except av.error.FFmpegError as e:
        raise TrackingError(f"cannot decode {path}: {e}") from e


def track_frames(
    frames: Iterable[tuple[float | None, np.ndarray]],
    static_images: bool,
    options: TrackOptions = TrackOptions(),
) -> FaceTrack:
    """Track (time, RGB frame) pairs; see the module docstring for gaps and spaces."""
    times, raw, size = [], [], None
    with FaceMesh(static_images, options) as mesh:
        for seconds, rgb in frames:
            size = rgb.shape[1], rgb.shape[0]
            times.append(seconds)
            raw.append(mesh.points(rgb))
    if not raw:
        raise TrackingError("no frames to track")
    found = np.array([p is not None for p in raw])
    if not found.any():
        raise TrackingError(f"no face found in any of {len(raw)} frames")
    points = np.full((len(raw), N_POINTS, 3), np.nan)
    points[found] = np.stack([p for p in raw if p is not None])
    valid = interpolate_gaps(points, found, options.max_gap)
    return _fit(points, found, valid, _fill_times(times), size)


def count_faces(frames: Iterable[np.ndarray], min_confidence: float = 0.5) -> list[int]:
    """Faces in each (H, W, 3) uint8 RGB frame, by MediaPipe's full-range face detector
    (FaceMesh's own detector is short-range and misses faces in wide frames)."""
    try:
        import mediapipe as mp
    except ImportError as e:
        raise EngineError(
            "face detection needs mediapipe 0.10.21: pip install -e '.[avatar]'"
        ) from e
    with mp.solutions.face_detection.FaceDetection(
        model_selection=1, min_detection_confidence=min_confidence
    ) as detector:
        return [len(detector.process(frame).detections or []) for frame in frames]


def interpolate_gaps(points: np.ndarray, found: np.ndarray, max_gap: int) -> np.ndarray:
    """Fill runs of at most max_gap missing frames between found frames, in place.

    points: (T, ...) with NaN where not found. Returns the (T,) mask of valid frames.
    """
    valid = found.copy()
    index = np.flatnonzero(found)
    for before, after in itertools.pairwise(index):
        gap = after - before - 1
        if 0 < gap <= max_gap:
            weights = (np.arange(1, gap + 1) / (gap + 1))[:, None, None]
            points[before + 1 : after] = (1 - weights) * points[before] + weights * points[after]
            valid[before + 1 : after] = True
    return valid


def _fill_times(times: list[float | None]) -> np.ndarray:
    if all(t is not None for t in times):
        return np.array(times, dtype=np.float64)
    return np.arange(len(times), dtype=np.float64)  # no timestamps: frame indices


def _fit(
    points: np.ndarray, found: np.ndarray, valid: np.ndarray, times: np.ndarray, size
) -> FaceTrack:
    """Estimate the clip's canonical shape and every frame's pose against it."""
    frames = np.flatnonzero(valid)
    reference = points[frames[0]]
    for _ in range(2):  # refine the reference: median of the frontalised frames
        poses = [
            similarity_fit(reference[RIGID_MEDIAPIPE], points[i][RIGID_MEDIAPIPE]) for i in frames
        ]
        frontal = np.stack(
            [(R.T @ (points[i] - t).T).T / s for i, (R, t, s) in zip(frames, poses, strict=True)]
        )
        reference = np.median(frontal, axis=0)
    reference = frontal_frame(reference, to_ibug68(reference), RIGID_MEDIAPIPE)

    count = len(points)
    rotation = np.full((count, 3, 3), np.nan)
    translation = np.full((count, 3), np.nan)
    scale = np.full(count, np.nan)
    for i in frames:
        rotation[i], translation[i], scale[i] = similarity_fit(
            reference[RIGID_MEDIAPIPE], points[i][RIGID_MEDIAPIPE]
        )
    pose = Pose(rotation, translation, scale)
    frontal = pose.remove(points)
    return FaceTrack(
        points=points.astype(np.float32),
        found=found,
        valid=valid,
        rotation=rotation.astype(np.float32),
        translation=translation.astype(np.float32),
        scale=scale.astype(np.float32),
        reference=reference.astype(np.float32),
        frontal=frontal.astype(np.float32),
        times=times,
        width=int(size[0]),
        height=int(size[1]),
    )


def track_image(rgb: np.ndarray, options: TrackOptions = TrackOptions()) -> FaceTrack:
    """Track one photo: (H, W, 3) uint8 RGB -> a FaceTrack with T = 1."""
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
        raise TrackingError(f"expected an (H, W, 3) uint8 RGB image, got {rgb.shape} {rgb.dtype}")
    return track_frames([(0.0, rgb)], static_images=True, options=options)


def default_cache_dir() -> Path:
    root = os.environ.get("EVP_CACHE") or Path.home() / ".cache" / "evp"
    return Path(root) / "tracking"


def file_digest(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def track_video(
    path: Path, options: TrackOptions = TrackOptions(), cache_dir: Path | None = None
) -> FaceTrack:
    """Track every frame of a video file, from the cache when this content was seen."""
    path = Path(path)
    if not path.is_file():
        raise TrackingError(f"no such video file: {path}")
    cache_dir = cache_dir or default_cache_dir()
    key = hashlib.sha256(
        json.dumps([file_digest(path), TRACKER_VERSION, asdict(options)]).encode()
    ).hexdigest()[:32]
    cached = cache_dir / f"{key}.npz"
    if cached.is_file():
        try:
            return FaceTrack.load(cached)
        except (OSError, ValueError, KeyError) as e:
            logger.warning("ignoring unreadable tracking cache %s: %s", cached, e)
    track = track_frames(read_frames(path), static_images=False, options=options)
    report = track.report()
    if report.missing or report.interpolated:
        logger.info("%s: %s", path.name, report)
    cache_dir.mkdir(parents=True, exist_ok=True)
    track.save(cached)
    return track


def faces_in_video(path: Path, samples: int = 5, cache_dir: Path | None = None) -> list[int]:
    """Faces (count_faces) in ``samples`` frames spread over a video, cached by content."""
    path = Path(path)
    cache_dir = cache_dir or default_cache_dir()
    cached = cache_dir / f"{file_digest(path)[:32]}.faces{samples}.json"
    if cached.is_file():
        try:
            return [int(n) for n in json.loads(cached.read_text())]
        except (OSError, ValueError, TypeError) as e:
            logger.warning("ignoring unreadable face-count cache %s: %s", cached, e)
    frames = [image for _, image in read_frames(path)]
    if not frames:
        raise TrackingError(f"{path} has no frames")
    picks = np.linspace(0, len(frames) - 1, min(samples, len(frames))).astype(int)
    counts = count_faces(frames[i] for i in picks)
    cache_dir.mkdir(parents=True, exist_ok=True)
    tmp = cached.with_name(cached.name + ".partial")
    tmp.write_text(json.dumps(counts))
    tmp.replace(cached)
    return counts
