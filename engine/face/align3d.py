"""3D-aware alignment (EVP eq. 8): frontal landmarks posed like a target video frame.

    l_p = s_t * Pr * R_t * L_p^3d + t_t

Predicted landmarks are frontal and 2D (x, y; engine.face.pose). They are lifted to 3D with
the avatar's canonical depth (z of its own frontal reference shape), rotated, scaled and
translated with the target frame's pose, and projected orthographically (keep x, y).
``paste_2d`` is the ablation: the same scale, in-plane rotation and translation applied to
the flat landmarks, which ignores yaw and pitch (the paper's Fig. 7 argument).
"""

import numpy as np

from engine.constants import JAW
from engine.face.pose import Pose


def align_3d(frontal: np.ndarray, depth: np.ndarray, pose: Pose) -> np.ndarray:
    """(T, N, 2) frontal x, y and (N,) canonical depth -> (T, N, 2) image pixels."""
    lifted = np.concatenate(
        [frontal, np.broadcast_to(depth[None, :, None], (*frontal.shape[:2], 1))], axis=2
    )
    return pose.apply(lifted)[..., :2]


def paste_2d(frontal: np.ndarray, pose: Pose) -> np.ndarray:
    """(T, N, 2) frontal x, y -> (T, N, 2) image pixels with scale, roll and translation only."""
    roll = np.arctan2(pose.rotation[:, 1, 0], pose.rotation[:, 0, 0])
    c, s = np.cos(roll), np.sin(roll)
    in_plane = np.stack([np.stack([c, -s], -1), np.stack([s, c], -1)], -2)  # (T, 2, 2)
    return (
        pose.scale[:, None, None] * np.einsum("tij,tnj->tni", in_plane, frontal)
        + pose.translation[:, None, :2]
    )


def alignment_errors(
    image68: np.ndarray, frontal68: np.ndarray, depth: np.ndarray, pose: Pose
) -> dict:
    """How well each method puts a frame's own frontal x, y back where the tracker saw them.

    image68: (T, 68, 2) tracked image landmarks; frontal68: (T, 68, 2) the same frames'
    frontal x, y; depth: (68,) canonical z. Errors are mean point distances in pixels and
    in % of the frame's inter-ocular distance, over all points and over the jaw contour.
    """
    iod = pose.scale  # one frontal unit = the outer-eye distance, in pixels
    results = {}
    for name, placed in (
        ("3d", align_3d(frontal68, depth, pose)),
        ("2d", paste_2d(frontal68, pose)),
    ):
        error = np.linalg.norm(placed - image68, axis=-1)  # (T, 68)
        results[name] = {
            "pixels": float(error.mean()),
            "percent_iod": float((100 * error / iod[:, None]).mean()),
            "contour_pixels": float(error[:, JAW.start : JAW.stop].mean()),
        }
    return results


def evaluate_alignment(clips_dir, cache_dir=None) -> dict:
    """``evp eval alignment``: 3D-aware alignment against 2D pasting on real clips.

    Each tracked frame's own frontal x, y is put back into the image with the clip's
    canonical depth (3d) or flat (2d); errors are against the tracked image landmarks.
    """
    from pathlib import Path

    from engine.data.clips import load_clips
    from engine.face.neutral import neutral_face
    from engine.face.pose import rotation_angles
    from engine.face.tracking import track_video

    clips, _ = load_clips(Path(clips_dir))
    per_clip = {}
    for clip in clips:
        track = track_video(clip.path, cache_dir=cache_dir)
        valid = track.valid
        pose = Pose(track.rotation[valid], track.translation[valid], track.scale[valid])
        errors = alignment_errors(
            track.landmarks68[valid][..., :2],
            track.frontal68[valid][..., :2],
            neutral_face(track)[:, 2],
            pose,
        )
        angles = np.abs(rotation_angles(pose.rotation)).max(axis=0)
        per_clip[clip.path.stem] = errors | {
            "max_abs_yaw_pitch_roll_degrees": [round(float(a), 1) for a in angles]
        }
    mean = lambda method, key: round(float(np.mean([c[method][key] for c in per_clip.values()])), 3)
    keys = ("pixels", "percent_iod", "contour_pixels")
    return {
        "3d": {k: mean("3d", k) for k in keys},
        "2d": {k: mean("2d", k) for k in keys},
        "clips": len(per_clip),
        "per_clip": per_clip,
    }
