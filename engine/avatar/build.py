"""``evp avatar build SOURCE --name NAME``: a video or photo -> an avatar bundle.

Steps (each announced on stderr):

 1. read the source: a video resampled to 25 fps, or a photo (engine.avatar.source)
 2. photos only: synthesise an idle loop and open-mouth training frames (engine.avatar.photo)
 3. check for exactly one face; track it through every frame (engine.face.tracking)
 4. keep the longest stretch where the face is tracked; a stable crop box around it
 5. smooth the head pose over time; the neutral face and canonical depth
 6. crop samples: face crop, guidance map (sketch + outside-face Canny edges), mask
 7. train the generator on all but the held-out frames (resumable)
 8. write the bundle, export ONNX, validate on the held-out frames

Work happens in ``<avatars>/.<name>.build/``; the bundle directory appears under its name
only when everything succeeded, so an interrupted or failed build never looks complete.
Running the same command again resumes generator training where it stopped.
"""

import hashlib
import json
import shutil
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from engine.avatar.bundle import (
    FORMAT_VERSION,
    GENERATOR_FILE,
    GENERATOR_ONNX,
    LOOP_FILE,
    VALIDATION_PNG,
    AvatarManifest,
    AvatarTrack,
    pack_edges,
    validate_name,
    write_video_frames,
)
from engine.avatar.crop import smooth_pose, stable_crop
from engine.avatar.source import (
    MAX_SECONDS,
    MIN_SECONDS,
    AvatarSourceError,
    Source,
    read_source,
)
from engine.constants import VIDEO_FPS
from engine.errors import AvatarError

MIN_FACE_PIXELS = 64  # outer-eye distance x ~2.5 ~ face width; below this there is no detail
MIN_CROP_PIXELS = 96
HELD_OUT = 0.1
PHOTO_LOOP_FRAMES = 100
PHOTO_MOTION_FRAMES = 64
VIDEO_EXPRESSION_FRAMES = 64  # engine.avatar.augment.expression_frames


@dataclass(frozen=True)
class BuildOptions:
    steps: int = 1500
    size: int = 256
    seed: int = 0
    source_note: str = ""  # what the source is, for the manifest (default: the file name)
    licence: str = "unspecified: the builder's own material"
    force: bool = False  # replace an existing avatar of this name
    max_seconds: float = MAX_SECONDS
    device: str | None = None  # generator training: "cpu", "cuda"; default CUDA if available
    face_share: float | None = None  # videos: frame the face to this share of the height
    expression_frames: int = VIDEO_EXPRESSION_FRAMES  # videos: warped expression frames

    def __post_init__(self) -> None:
        if self.steps < 1:
            raise AvatarError(f"--steps must be at least 1, got {self.steps}")
        if self.size < 64 or self.size % 16:
            raise AvatarError(f"--size must be a multiple of 16 and at least 64, got {self.size}")
        if self.expression_frames < 0:
            raise AvatarError(
                f"--expression-frames must be 0 or more, got {self.expression_frames}"
            )
        if not MIN_SECONDS <= self.max_seconds <= MAX_SECONDS:
            raise AvatarError(
                f"--max-seconds must be between {MIN_SECONDS:.0f} and {MAX_SECONDS:.0f}, "
                f"got {self.max_seconds}"
            )


def require_build_packages() -> None:
    """Fail before any work when the packages of `.[avatar,train]` are missing."""
    import importlib.util

    missing = [
        name
        for name in ("torch", "safetensors", "onnx", "skimage", "mediapipe")
        if importlib.util.find_spec(name) is None
    ]
    if missing:
        raise AvatarError(
            f"building avatars needs {', '.join(missing)}: pip install -e '.[avatar,train]'"
        )


def _say(step: int, text: str) -> None:
    print(f"evp avatar build [{step}/8] {text}", file=sys.stderr, flush=True)


def longest_run(valid: np.ndarray) -> tuple[int, int]:
    """(start, stop) of the longest run of True in a (T,) bool array; (0, 0) if none."""
    best, start = (0, 0), None
    for i, v in enumerate(np.append(valid, False)):
        if v and start is None:
            start = i
        elif not v and start is not None:
            if i - start > best[1] - best[0]:
                best = (start, i)
            start = None
    return best


def _check_one_face(frames: np.ndarray, source: Path) -> None:
    from engine.face.tracking import count_faces

    picks = frames[np.linspace(0, len(frames) - 1, min(5, len(frames))).astype(int)]
    counts = count_faces(picks)
    if max(counts) == 0:
        raise AvatarSourceError(
            f"no face found in {source}: use a video or photo where one face looks at the camera"
        )
    if sum(c > 1 for c in counts) * 2 > len(counts) or (len(counts) == 1 and counts[0] > 1):
        raise AvatarSourceError(
            f"{source} shows {max(counts)} faces; an avatar needs exactly one: crop the "
            "video or photo to one person"
        )


def _track(frames: np.ndarray, source: Path):
    from engine.face.tracking import TrackingError, track_frames

    try:
        return track_frames(((i / VIDEO_FPS, f) for i, f in enumerate(frames)), static_images=False)
    except TrackingError as e:
        raise AvatarSourceError(
            f"cannot track the face in {source} ({e}): use a source where the face is "
            "frontal, well lit and at least a few hundred pixels tall"
        ) from e


def _source_key(source: Path, options: BuildOptions) -> str:
    digest = hashlib.sha256()
    with open(source, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    ignored = ("force", "source_note", "licence", "device")  # do not change the result
    keyed = {k: v for k, v in asdict(options).items() if k not in ignored}
    digest.update(json.dumps(keyed, sort_keys=True).encode())
    return digest.hexdigest()


def _frames_and_tracks(source: Source, path: Path, options: BuildOptions):
    """-> loop frames, loop track, extra training frames, their track."""
    from engine.avatar.photo import idle_loop, motion_frames
    from engine.face.tracking import TrackingError, track_image

    _check_one_face(source.frames, path)
    if source.kind == "video":
        return _video_frames_and_tracks(source.frames, path, options)
    photo = source.frames[0]
    try:
        face = track_image(photo).landmarks68[0, :, :2].astype(np.float64)
    except TrackingError as e:
        raise AvatarSourceError(
            f"cannot find the face's landmarks in {path} ({e}): use a closer, frontal, "
            "well-lit photo"
        ) from e
    width = float(np.ptp(face[:, 0]))
    if width < MIN_FACE_PIXELS:
        raise AvatarSourceError(
            f"the face in {path} is only {width:.0f} pixels wide; it needs at least "
            f"{MIN_FACE_PIXELS}: use a larger or closer photo"
        )
    _say(
        2,
        f"photo: synthesising a {PHOTO_LOOP_FRAMES}-frame idle loop and "
        f"{PHOTO_MOTION_FRAMES} frames of speech and expressions",
    )
    loop = idle_loop(photo, face, PHOTO_LOOP_FRAMES)
    extra = motion_frames(photo, face, PHOTO_MOTION_FRAMES)
    _say(3, "tracking the synthesised frames")
    return loop, _track(loop, path), extra, _track(extra, path)


def _video_frames_and_tracks(frames: np.ndarray, path: Path, options: BuildOptions):
    """A video's frames (framed when asked), their track, and expression frames warped
    from the frames that are not held out (engine.avatar.augment), with their track."""
    from engine.avatar.augment import call_framing, emotion_shapes, expression_frames

    _say(3, f"tracking the face through {len(frames)} frames")
    track = _track(frames, path)
    if options.face_share is not None:
        size = (int(frames.shape[1]), int(frames.shape[2]))
        window = call_framing(size, track.landmarks68[..., :2], options.face_share)
        _say(3, f"framing: a {window.size} px square at ({window.x}, {window.y}); tracking again")
        frames = window.crop(frames)
        track = _track(frames, path)
    if not options.expression_frames:
        return frames, track, None, None
    start, stop = longest_run(track.valid)  # the stretch build_avatar keeps
    trained = np.setdiff1d(np.arange(start, stop), start + _held_out(stop - start, "video"))
    _say(3, f"warping {options.expression_frames} expression frames; tracking them")
    extra = expression_frames(
        frames[trained],
        track.landmarks68[trained, :, :2],
        options.expression_frames,
        options.seed,
        emotion_shapes(),
    )
    return frames, track, extra, _track(extra, path)


def build_avatar(source_path: Path, name: str, root: Path, options: BuildOptions) -> Path:
    """Build the bundle ``root/name``; returns its directory. Raises AvatarError."""
    from engine.avatar.generator import GeneratorConfig, export_onnx, save_generator
    from engine.avatar.samples import crop_sample
    from engine.avatar.training import SampleSet, TrainOptions, train_generator
    from engine.face.neutral import neutral_face
    from engine.face.pose import Pose

    validate_name(name)
    require_build_packages()
    source_path = Path(source_path)
    final = root / name
    _recover(final)
    if final.exists() and not options.force:
        raise AvatarError(f"an avatar named {name!r} exists at {final}; pass --force to replace it")
    started = time.monotonic()
    _say(1, f"reading {source_path}")
    source = read_source(source_path, options.max_seconds)

    frames, track, extra, extra_track = _frames_and_tracks(source, source_path, options)
    start, stop = longest_run(track.valid)
    if stop - start < MIN_SECONDS * VIDEO_FPS:
        raise AvatarSourceError(
            f"the face is tracked in {int(track.valid.sum())} of {len(frames)} frames and its "
            f"longest unbroken stretch is {(stop - start) / VIDEO_FPS:.1f} s; an avatar needs "
            f"{MIN_SECONDS:.0f} s: use a clip where the face stays in view and unhidden"
        )
    if (start, stop) != (0, len(frames)):
        _say(
            4,
            f"face lost in places: using frames {start}-{stop - 1} ({(stop - start) / VIDEO_FPS:.1f} s)",
        )
    frames = frames[start:stop]
    landmarks = track.landmarks68[start:stop, :, :2].astype(np.float64)
    all_points = landmarks
    if extra is not None:
        extra_valid = extra_track.valid
        extra, extra_landmarks = extra[extra_valid], extra_track.landmarks68[extra_valid, :, :2]
        all_points = np.concatenate([landmarks, extra_landmarks])
    box = stable_crop(all_points, frames.shape[1:3])
    if box.size < MIN_CROP_PIXELS:
        raise AvatarSourceError(
            f"the face in {source_path} is too small ({box.size} px crop); it needs a "
            f"{MIN_CROP_PIXELS} px crop or more: use a closer or higher-resolution source"
        )
    _say(4, f"crop box x={box.x} y={box.y} size={box.size} on {frames.shape[2]}x{frames.shape[1]}")

    _say(5, "smoothing the head pose; neutral face and canonical depth")
    valid = slice(start, stop)
    pose = smooth_pose(Pose(track.rotation[valid], track.translation[valid], track.scale[valid]))
    neutral = neutral_face(track)

    _say(6, "crop samples: face crops, guidance maps, masks")
    samples = [
        crop_sample(f, lm, box, options.size) for f, lm in zip(frames, landmarks, strict=True)
    ]
    count = len(samples)
    held_out = _held_out(count, source.kind)
    train = np.setdiff1d(np.arange(count), held_out)
    held = set(held_out.tolist())
    pairs = [(i, i + 1) for i in train if i + 1 < count and i + 1 not in held]
    if extra is not None:
        samples += [
            crop_sample(f, lm, box, options.size)
            for f, lm in zip(extra, extra_landmarks, strict=True)
        ]
        pairs += [(i, i + 1) for i in range(count, len(samples) - 1)]
    sample_set = SampleSet(
        np.stack([s.rgb for s in samples]),
        np.stack([s.guidance for s in samples]),
        np.stack([s.mask for s in samples]),
        np.array(pairs),
    )

    work = _work_dir(root, name, _source_key(source_path, options))
    config = GeneratorConfig(size=options.size)
    _say(
        7,
        f"training the generator: {options.steps} steps on {len(pairs)} frame pairs "
        f"({len(held_out)} frames held out)",
    )
    generator = train_generator(
        sample_set,
        config,
        TrainOptions(steps=options.steps, seed=options.seed),
        work / "generator-state.pt",
        device=options.device,
    )

    _say(8, "writing the bundle; exporting ONNX; validating on held-out frames")
    bundle = work / "bundle"
    write_video_frames(bundle / LOOP_FILE, frames, VIDEO_FPS)
    edges = np.stack([s.guidance[5] for s in samples[:count]])
    AvatarTrack(landmarks.astype(np.float32), pose, neutral, pack_edges(edges)).save(
        bundle / "track.npz"
    )
    save_generator(bundle / GENERATOR_FILE, generator)
    export_onnx(generator, bundle / GENERATOR_ONNX)
    manifest = AvatarManifest(
        name=name,
        format_version=FORMAT_VERSION,
        kind=source.kind,
        source=options.source_note or source_path.name,
        licence=options.licence,
        fps=VIDEO_FPS,
        frame_count=count,
        width=int(frames.shape[2]),
        height=int(frames.shape[1]),
        frames_file=LOOP_FILE,
        crop=asdict(box),
        generator=config.to_json() | {"weights": GENERATOR_FILE, "onnx": GENERATOR_ONNX},
        held_out=[int(i) for i in held_out],
        build={
            "source_fps": round(source.fps_in, 3),
            "source_frames_used": [int(start), int(stop)],
            "steps": options.steps,
            "seed": options.seed,
            "face_share": options.face_share,
            "expression_frames": len(extra) if extra is not None else 0,
            "seconds": round(time.monotonic() - started, 1),
        },
    )
    manifest.write(bundle)
    validation = _validate(bundle)
    manifest = AvatarManifest(**{**asdict(manifest), "validation": validation})
    manifest.write(bundle)
    _publish(bundle, final)
    shutil.rmtree(work)
    print(
        f"evp avatar build: wrote {final} ({count} frames, crop {box.size} px); held-out "
        f"SSIM {validation['ssim']:.3f}, PSNR {validation['psnr']:.1f} dB",
        file=sys.stderr,
    )
    return final


def _work_dir(root: Path, name: str, key: str) -> Path:
    """``root/.name.build``, kept between runs of the same build so training resumes."""
    work = root / f".{name}.build"
    key_file = work / "source.key"
    if work.exists() and (not key_file.is_file() or key_file.read_text() != key):
        shutil.rmtree(work)  # another source or other options: start over
    (work / "bundle").mkdir(parents=True, exist_ok=True)
    key_file.write_text(key)
    return work


def _held_out(count: int, kind: str) -> np.ndarray:
    """Videos: the last 10 % as one block (unseen motion); photos: every tenth loop frame."""
    if kind == "photo":
        return np.arange(5, count, 10)
    size = max(5, int(np.ceil(HELD_OUT * count)))
    return np.arange(count - size, count)


def _validate(bundle: Path) -> dict:
    from engine.avatar.bundle import Avatar
    from engine.evaluation.avatar import evaluate_avatar

    return evaluate_avatar(Avatar.load(bundle), png=bundle / VALIDATION_PNG)


def _recover(final: Path) -> None:
    """Put back an avatar that a build interrupted mid-replacement left as ``.NAME.old``."""
    old = final.with_name(f".{final.name}.old")
    if old.exists() and not final.exists():
        old.rename(final)


def _publish(bundle: Path, final: Path) -> None:
    """Move the finished bundle into place. An existing avatar is moved aside first and
    deleted only once the new one is in place; if the swap fails it is put back (and a
    crash in between is undone by _recover on the next build)."""
    old = final.with_name(f".{final.name}.old")
    if old.exists():
        shutil.rmtree(old)  # _recover ran: final exists, so this is a stale copy
    if final.exists():
        final.rename(old)
    try:
        bundle.rename(final)
    except OSError:
        if old.exists() and not final.exists():
            old.rename(final)
        raise
    if old.exists():
        shutil.rmtree(old)
