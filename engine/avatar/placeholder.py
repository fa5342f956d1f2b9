"""Build the placeholder avatar: a still photo with a gentle synthetic idle motion.

Until avatars are built from video (the avatar issue), the default avatar is scikit-image's
public-domain astronaut photo (NASA) with a slow sway and breathing zoom, played as a loop.
"""

import json
from pathlib import Path

import cv2
import numpy as np

from engine.avatar.bundle import FORMAT_VERSION, MANIFEST, validate_name, write_video_frames
from engine.constants import VIDEO_FPS

LOOP_FRAMES = 50  # 2 s forward, then played backward


def idle_motion(image: np.ndarray, frame_count: int = LOOP_FRAMES) -> np.ndarray:
    """(H, W, 3) uint8 -> (frame_count, H, W, 3): sway +-1 degree, zoom 1.00-1.02."""
    height, width = image.shape[:2]
    centre = (width / 2, height * 0.4)
    frames = []
    for i in range(frame_count):
        phase = i / (frame_count - 1)  # 0..1; the loop plays back, so half a period suffices
        angle = -1.0 + 2.0 * 0.5 * (1 - np.cos(np.pi * phase))
        scale = 1.02 + 0.01 * (1 - np.cos(np.pi * phase))
        matrix = cv2.getRotationMatrix2D(centre, angle, scale)
        frames.append(
            cv2.warpAffine(
                image, matrix, (width, height), flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REFLECT
            )
        )
    return np.stack(frames)


def build_placeholder(out_dir: Path, name: str = "default") -> Path:
    """Write the astronaut placeholder bundle to ``out_dir`` (needs scikit-image)."""
    try:
        from skimage import data
    except ImportError as e:
        raise SystemExit(
            "building the placeholder avatar needs scikit-image: pip install -e '.[avatar]'"
        ) from e
    validate_name(name)
    out_dir.mkdir(parents=True, exist_ok=True)
    frames = idle_motion(data.astronaut())
    write_video_frames(out_dir / "loop.mp4", frames, VIDEO_FPS)
    manifest = {
        "format_version": FORMAT_VERSION,
        "name": name,
        "kind": "placeholder",
        "source": "scikit-image data.astronaut(): Eileen Collins, NASA photograph",
        "licence": "public domain (NASA); see scikit-image's data/README",
        "fps": VIDEO_FPS,
        "frame_count": int(frames.shape[0]),
        "width": int(frames.shape[2]),
        "height": int(frames.shape[1]),
        "frames_file": "loop.mp4",
    }
    tmp = out_dir / (MANIFEST + ".partial")
    tmp.write_text(json.dumps(manifest, indent=2) + "\n")
    tmp.replace(out_dir / MANIFEST)
    return out_dir
