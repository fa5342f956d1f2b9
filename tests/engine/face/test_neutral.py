import numpy as np

from engine.constants import MOUTH
from engine.face.neutral import neutral_face
from engine.face.tracking import track_video
from engine.targets.visemes import inner_lip_opening


def test_neutral_face_rests_its_mouth(shared_data):
    track = track_video(shared_data / "talking" / "videoretalking_face_1.mp4")
    face = neutral_face(track)
    assert face.shape == (68, 3) and np.isfinite(face).all()
    openings = inner_lip_opening(track.frontal68[track.valid][:, MOUTH.start : MOUTH.stop, :2])
    rest = inner_lip_opening(face[MOUTH.start : MOUTH.stop, :2])
    assert rest <= np.percentile(openings, 15)  # among the most closed frames
    assert np.ptp(face[:, 2]) > 0.1  # a real depth profile (frontal units)
