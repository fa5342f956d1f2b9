"""A person's neutral face from their tracked video: the avatar's l_a (eq. 7) and the
canonical depth of 3D-aware alignment (eq. 8).

The tracking reference (the median frontalised shape) is the face at rest except for the
mouth, which in talking video is open much of the time; the mouth is replaced by its rest
shape, the median of the frames with the most closed lips (engine.targets.visemes).
"""

import numpy as np

from engine.constants import MOUTH
from engine.face.landmarks68 import to_ibug68
from engine.face.tracking import FaceTrack
from engine.targets.visemes import rest_mouth


def neutral_face(track: FaceTrack) -> np.ndarray:
    """(68, 3) frontal neutral landmarks: x, y for the models, z the canonical depth."""
    valid = track.valid
    if valid.sum() < 1:
        raise ValueError("no tracked frame: the neutral face needs at least one")
    face = to_ibug68(track.reference).astype(np.float64)
    mouth = track.frontal68[valid][:, MOUTH.start : MOUTH.stop, :2].astype(np.float64)
    face[MOUTH.start : MOUTH.stop, :2] = rest_mouth(mouth)
    return face
