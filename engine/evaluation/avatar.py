"""``evp eval avatar``: how well an avatar's generator redraws frames it never trained on.

Each held-out loop frame is rendered from its own tracked landmarks (the face masked out,
the sketch drawn from the landmarks) and compared with the real frame:

    ssim, psnr            on the S x S face crop the generator produces (the strict figure:
                          the face fills much of it)
    face_psnr             over the face mask only (what the generator had to invent)
    full_ssim, full_psnr  on the composited full frame (what a viewer sees)

PSNR in dB for 8-bit RGB; SSIM is scikit-image's, over the RGB channels.
"""

from pathlib import Path

import numpy as np

from engine.avatar.bundle import Avatar
from engine.avatar.render import FaceRenderer


def _psnr(a: np.ndarray, b: np.ndarray, weight: np.ndarray | None = None) -> float:
    error = (a.astype(np.float64) - b.astype(np.float64)) ** 2
    if weight is not None:
        mse = (error * weight[..., None]).sum() / max(3 * weight.sum(), 1e-9)
    else:
        mse = error.mean()
    return float(10 * np.log10(255.0**2 / max(mse, 1e-10)))


def evaluate_avatar(avatar: Avatar, png: Path | None = None, renderer=None) -> dict:
    from skimage.metrics import structural_similarity

    renderer = renderer or FaceRenderer(avatar)
    indices = avatar.manifest.held_out
    if not indices:
        raise ValueError(f"avatar {avatar.manifest.name!r} has no held-out frames to evaluate")
    rows, strip = [], []
    for index in indices:
        rendered = renderer.render(index, avatar.track.landmarks[index])
        real_crop, real_frame = rendered.sample.rgb, avatar.frames[index]
        rows.append(
            (
                structural_similarity(real_crop, rendered.crop, channel_axis=2),
                _psnr(real_crop, rendered.crop),
                _psnr(real_crop, rendered.crop, (rendered.sample.mask > 0.5).astype(np.float64)),
                structural_similarity(real_frame, rendered.frame, channel_axis=2),
                _psnr(real_frame, rendered.frame),
            )
        )
        strip.append((real_crop, rendered.crop))
    ssim, psnr, face_psnr, full_ssim, full_psnr = np.mean(rows, axis=0)
    if png is not None:
        _write_strip(png, strip)
    return {
        "avatar": avatar.manifest.name,
        "held_out_frames": len(indices),
        "size": renderer.size,
        "ssim": round(float(ssim), 4),
        "psnr": round(float(psnr), 2),
        "face_psnr": round(float(face_psnr), 2),
        "full_ssim": round(float(full_ssim), 4),
        "full_psnr": round(float(full_psnr), 2),
    }


def _write_strip(path: Path, pairs: list[tuple[np.ndarray, np.ndarray]], columns: int = 8) -> None:
    """Real crops on the top row, generated below, for up to ``columns`` evenly spaced frames."""
    import cv2

    chosen = [
        pairs[i] for i in np.linspace(0, len(pairs) - 1, min(columns, len(pairs))).astype(int)
    ]
    top = np.concatenate([real for real, _ in chosen], axis=1)
    bottom = np.concatenate([fake for _, fake in chosen], axis=1)
    image = np.concatenate([top, bottom], axis=0)
    tmp = path.with_name(path.name + ".partial.png")
    cv2.imwrite(str(tmp), cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
    tmp.replace(path)
