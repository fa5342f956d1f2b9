import itertools

import cv2
import numpy as np
import pytest

pytest.importorskip("mediapipe")

from engine.face.landmarks68 import MEDIAPIPE_TO_IBUG68, to_ibug68
from engine.face.pose import rotation_angles, similarity_fit
from engine.face.tracking import (
    FaceTrack,
    TrackingError,
    TrackOptions,
    interpolate_gaps,
    read_frames,
    track_frames,
    track_image,
    track_video,
)


@pytest.fixture(scope="module")
def astronaut() -> np.ndarray:
    from skimage import data

    return data.astronaut()


def warp(image: np.ndarray, angle: float, scale: float) -> np.ndarray:
    height, width = image.shape[:2]
    matrix = cv2.getRotationMatrix2D((width / 2, height / 2), angle, scale)
    return cv2.warpAffine(image, matrix, (width, height), borderMode=cv2.BORDER_REFLECT)


def test_index_map_is_a_set_of_distinct_facemesh_points():
    assert len(set(MEDIAPIPE_TO_IBUG68.tolist())) == 68
    assert MEDIAPIPE_TO_IBUG68.min() >= 0 and MEDIAPIPE_TO_IBUG68.max() < 468  # no iris points
    points = np.arange(478 * 3, dtype=float).reshape(478, 3)
    np.testing.assert_array_equal(to_ibug68(points)[:, 0], MEDIAPIPE_TO_IBUG68 * 3)


def test_similarity_fit_recovers_a_known_transform():
    rng = np.random.default_rng(0)
    source = rng.standard_normal((30, 3))
    rotation, _ = np.linalg.qr(rng.standard_normal((3, 3)))
    rotation *= np.sign(np.linalg.det(rotation))
    target = 2.5 * source @ rotation.T + np.array([10.0, -3.0, 4.0])
    R, t, s = similarity_fit(source, target)
    np.testing.assert_allclose(R, rotation, atol=1e-9)
    np.testing.assert_allclose(t, [10.0, -3.0, 4.0], atol=1e-9)
    assert s == pytest.approx(2.5)


def check_ibug_geometry(landmarks: np.ndarray) -> None:
    """Image-space facts about one (68, 2+) set of iBUG landmarks."""
    x, y = landmarks[:, 0], landmarks[:, 1]
    assert y[8] == pytest.approx(y[:17].max(), abs=3)  # the chin is the lowest jaw point
    assert x[36] < x[39] < x[42] < x[45]  # eye corners left to right
    assert x[48] < x[51] < x[54] and x[31] < x[33] < x[35]
    assert (
        y[17:27].mean() < y[36:48].mean() < y[27:36].max() < y[48:68].mean()
    )  # brows, eyes, nose, mouth
    assert y[51] < y[62] < y[66] <= y[57]  # outer top, inner top, inner bottom, outer bottom


def test_real_clip_tracks_with_consistent_pose_and_frontal_space(shared_data, tmp_path):
    clip = shared_data / "talking" / "videoretalking_face_2.mp4"
    track = track_frames(itertools.islice(read_frames(clip), 40), static_images=False)
    assert track.report().found == 40 and track.points.shape == (40, 478, 3)
    for frame in (0, 20, 39):
        check_ibug_geometry(track.landmarks68[frame])
    # Frontal space: rigid centroid at the origin, unit inter-ocular distance, eye line on x.
    reference68 = to_ibug68(track.reference)
    assert np.linalg.norm(reference68[45] - reference68[36]) == pytest.approx(1.0, abs=1e-5)
    eye_line = reference68[[42, 45]].mean(0) - reference68[[36, 39]].mean(0)
    assert abs(eye_line[1]) < 1e-5 and abs(eye_line[2]) < 1e-5
    # Pose and frontal points round-trip to the tracked points.
    np.testing.assert_allclose(track.pose.apply(track.frontal), track.points, atol=1e-2)
    # The rigid fit is good: upper-face frontal points stay put while the person talks.
    rigid_spread = track.frontal68[:, 36:48].std(axis=0).mean()
    mouth_spread = track.frontal68[:, 48:68].std(axis=0).mean()
    assert rigid_spread < 0.02 and mouth_spread > rigid_spread


def test_known_rotation_and_scale_of_a_generated_image_are_recovered(astronaut):
    frames = [
        (0.0, astronaut),
        (0.04, warp(astronaut, 12.0, 1.0)),
        (0.08, warp(astronaut, 0.0, 0.8)),
    ]
    track = track_frames(frames, static_images=True)
    assert track.found.all()
    roll = rotation_angles(track.rotation)[:, 2]
    # OpenCV's positive angle turns the image counter-clockwise: roll decreases by 12 degrees
    assert roll[0] - roll[1] == pytest.approx(12.0, abs=1.5)
    assert track.scale[2] / track.scale[0] == pytest.approx(0.8, rel=0.03)
    check_ibug_geometry(track.landmarks68[0])


def test_frames_without_a_face_are_marked_interpolated_and_reported(astronaut):
    blank = np.full_like(astronaut, 127)
    frames = [astronaut, blank, astronaut, blank, blank, blank, astronaut, blank]
    track = track_frames(
        [(0.04 * i, f) for i, f in enumerate(frames)],
        static_images=True,
        options=TrackOptions(max_gap=2),
    )
    np.testing.assert_array_equal(track.found, [1, 0, 1, 0, 0, 0, 1, 0])
    np.testing.assert_array_equal(track.valid, [1, 1, 1, 0, 0, 0, 1, 0])
    report = track.report()
    assert (report.frames, report.found, report.interpolated, report.missing) == (8, 3, 1, 4)
    assert np.isnan(track.points[4]).all() and np.isfinite(track.points[1]).all()
    np.testing.assert_allclose(track.points[1], (track.points[0] + track.points[2]) / 2, atol=1e-3)


def test_interpolate_gaps_only_fills_short_inner_gaps():
    points = np.full((9, 1, 1), np.nan)
    found = np.array([0, 1, 0, 0, 1, 0, 0, 0, 1], bool)
    points[found, 0, 0] = [1.0, 4.0, 8.0]
    valid = interpolate_gaps(points, found, max_gap=2)
    np.testing.assert_array_equal(valid, [0, 1, 1, 1, 1, 0, 0, 0, 1])
    np.testing.assert_allclose(points[1:5, 0, 0], [1, 2, 3, 4])


def test_no_face_and_bad_media_give_clear_errors(tmp_path):
    with pytest.raises(TrackingError, match="no face found"):
        track_image(np.zeros((64, 64, 3), np.uint8))
    with pytest.raises(TrackingError, match="uint8 RGB"):
        track_image(np.zeros((64, 64), np.uint8))
    with pytest.raises(TrackingError, match="no such video file"):
        track_video(tmp_path / "missing.mp4", cache_dir=tmp_path)
    fake = tmp_path / "fake.mp4"
    fake.write_text("not a video")
    with pytest.raises(TrackingError, match="cannot decode"):
        track_video(fake, cache_dir=tmp_path)


def test_cache_by_content_makes_reruns_instant(shared_data, tmp_path, monkeypatch):
    from engine.face import tracking

    runs = []
    real_track_frames = tracking.track_frames

    def counted(*args, **kwargs):
        runs.append(1)
        return real_track_frames(*args, **kwargs)

    monkeypatch.setattr(tracking, "track_frames", counted)
    clip = shared_data / "talking" / "vexpress_RD_Radio10_0_clip_0.mp4"
    first = track_video(clip, cache_dir=tmp_path)
    copy = tmp_path / "renamed.mp4"
    copy.write_bytes(clip.read_bytes())  # same content under another name: same cache entry
    second = track_video(copy, cache_dir=tmp_path)
    assert len(runs) == 1  # the second call never ran the tracker
    np.testing.assert_array_equal(first.points, second.points)
    assert len(list(tmp_path.glob("*.npz"))) == 1
    # A damaged cache entry is ignored and rewritten.
    entry = next(tmp_path.glob("*.npz"))
    entry.write_bytes(b"garbage")
    third = track_video(clip, cache_dir=tmp_path)
    assert len(runs) == 2
    np.testing.assert_array_equal(first.points, third.points)
    assert isinstance(FaceTrack.load(entry), FaceTrack)
