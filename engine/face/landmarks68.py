"""The one map from MediaPipe FaceMesh's 478 points to the 68-point iBUG layout.

iBUG order (DESIGN §2): jaw 0-16 from the subject's right (image left) round the chin to
the left, brows 17-26 (image-left brow outer -> inner, then image-right brow inner ->
outer), nose 27-35 (bridge top -> tip, then the nostril base left -> right), eyes 36-47
(each from its outer corner, clockwise in the image), mouth 48-67 (outer lip from the
image-left corner clockwise, then the inner lip). "Left"/"right" below are image sides.
"""

import numpy as np

MEDIAPIPE_TO_IBUG68 = np.array(
    [
        # jaw 0-16
        127,
        234,
        132,
        58,
        172,
        150,
        176,
        148,
        152,
        377,
        400,
        379,
        397,
        288,
        361,
        454,
        356,
        # brows 17-21 (image left), 22-26 (image right)
        70,
        63,
        105,
        66,
        107,
        336,
        296,
        334,
        293,
        300,
        # nose bridge 27-30, nostril base 31-35
        168,
        197,
        5,
        4,
        98,
        97,
        2,
        326,
        327,
        # eyes 36-41 (image left), 42-47 (image right)
        33,
        160,
        158,
        133,
        153,
        144,
        362,
        385,
        387,
        263,
        373,
        380,
        # outer lip 48-59, inner lip 60-67
        61,
        40,
        37,
        0,
        267,
        270,
        291,
        321,
        314,
        17,
        84,
        91,
        78,
        81,
        13,
        311,
        308,
        402,
        14,
        178,
    ],
    dtype=np.int64,
)
assert MEDIAPIPE_TO_IBUG68.shape == (68,)

#: Upper-face FaceMesh points that do not move when speaking: MediaPipe's procrustes basis
#: (face_geometry's geometry_pipeline_metadata_landmarks) without its lower cheek and jaw
#: points, which follow the mouth. Head pose is fitted on these.
RIGID_MEDIAPIPE = np.array(
    [
        4,
        6,
        10,
        33,
        54,
        67,
        117,
        119,
        121,
        127,
        129,
        133,
        143,
        198,
        263,
        284,
        297,
        346,
        348,
        350,
        356,
        358,
        362,
        372,
    ],
    dtype=np.int64,
)

# iBUG indices used to define the frontal frame.
RIGHT_EYE_OUTER, RIGHT_EYE_INNER, LEFT_EYE_INNER, LEFT_EYE_OUTER = 36, 39, 42, 45
MOUTH_LEFT, MOUTH_RIGHT = 48, 54


def to_ibug68(points478: np.ndarray) -> np.ndarray:
    """(..., 478, D) FaceMesh points -> (..., 68, D) iBUG landmarks."""
    return points478[..., MEDIAPIPE_TO_IBUG68, :]
