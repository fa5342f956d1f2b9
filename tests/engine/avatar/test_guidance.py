import numpy as np
import pytest

from engine.avatar.guidance import PARTS, face_mask, guidance, outside_edges, sketch


@pytest.fixture
def tracked(shared_data):
    """A real frame and its tracked landmarks."""
    import av

    from engine.face.tracking import track_video

    path = shared_data / "talking" / "videoretalking_face_2.mp4"
    track = track_video(path)
    with av.open(str(path)) as container:
        frame = next(container.decode(video=0)).to_ndarray(format="rgb24")
    return frame, track.landmarks68[0][:, :2]


def test_sketch_draws_each_part_on_its_own_points(tracked):
    frame, landmarks = tracked
    channels = sketch(landmarks, frame.shape[:2])
    assert channels.shape == (len(PARTS), *frame.shape[:2]) and channels.dtype == np.uint8
    for channel, (name, lines, _) in zip(channels, PARTS, strict=True):
        for index in (i for line in lines for i in line):
            x, y = np.round(landmarks[index]).astype(int)
            assert channel[y - 1 : y + 2, x - 1 : x + 2].max() > 0, f"{name} misses point {index}"
    mouth_centre = np.round(landmarks[48:68].mean(0)).astype(int)
    assert channels[0][mouth_centre[1], mouth_centre[0]] == 0  # the jaw channel has no lips


def test_edges_are_kept_outside_the_face_only(tracked):
    frame, landmarks = tracked
    mask = face_mask(landmarks, frame.shape[:2])
    edges = outside_edges(frame, landmarks)
    assert mask[tuple(np.round(landmarks[30, ::-1]).astype(int))]  # nose tip is inside
    assert not edges[mask].any() and edges[~mask].any()
    assert guidance(frame, landmarks).shape == (6, *frame.shape[:2])


def test_bad_landmarks_are_refused():
    with pytest.raises(ValueError, match=r"\(68, 2\)"):
        sketch(np.zeros((20, 2)), (64, 64))
    with pytest.raises(ValueError, match="finite"):
        face_mask(np.full((68, 2), np.nan), (64, 64))
