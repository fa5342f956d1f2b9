import av
import numpy as np
import pytest

from engine.avatar.source import AvatarSourceError, read_source, resample


def _write_video(path, frames, fps):
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height = frames.shape[2], frames.shape[1]
        stream.pix_fmt = "yuv420p"
        for frame in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


def _numbered(count, size=(48, 64)):
    """Frames whose brightness encodes their index (robust to compression)."""
    return np.stack([np.full((*size, 3), 4 * i, np.uint8) for i in range(count)])


def test_resample_shows_the_frame_on_screen_at_each_tick():
    # 30 fps -> 25 fps: tick k at k/25 s shows source frame floor(k * 30 / 25)
    timed = [(i / 30, np.full((2, 2, 3), i, np.uint8)) for i in range(60)]
    out = resample(timed, 25)
    assert len(out) == 50  # two seconds
    assert [int(f[0, 0, 0]) for f in out[:7]] == [0, 1, 2, 3, 4, 6, 7]
    # 12.5 fps -> every frame shown twice
    timed = [(i / 12.5, np.full((2, 2, 3), i, np.uint8)) for i in range(10)]
    assert [int(f[0, 0, 0]) for f in resample(timed, 25)][:6] == [0, 0, 1, 1, 2, 2]


def test_a_30_fps_video_is_read_at_25_fps(tmp_path):
    path = tmp_path / "clip.mp4"
    _write_video(path, _numbered(60), 30)
    source = read_source(path)
    assert source.kind == "video" and round(source.fps_in) == 30
    assert source.frames.shape == (50, 48, 64, 3)
    indices = np.round(source.frames[:, 24, 32, 0] / 4).astype(int)
    expected = np.floor(np.arange(50) * 30 / 25).astype(int)
    assert np.array_equal(indices, expected)


def test_bad_sources_are_refused_with_the_reason(tmp_path):
    with pytest.raises(AvatarSourceError, match="no such file"):
        read_source(tmp_path / "missing.mp4")
    (tmp_path / "empty.mp4").write_bytes(b"")
    with pytest.raises(AvatarSourceError, match="empty"):
        read_source(tmp_path / "empty.mp4")
    (tmp_path / "junk.mp4").write_bytes(b"not a video at all" * 100)
    with pytest.raises(AvatarSourceError, match="cannot decode"):
        read_source(tmp_path / "junk.mp4")
    (tmp_path / "junk.png").write_bytes(b"not an image")
    with pytest.raises(AvatarSourceError, match="cannot read"):
        read_source(tmp_path / "junk.png")
    short = tmp_path / "short.mp4"
    _write_video(short, _numbered(25), 25)
    with pytest.raises(AvatarSourceError, match="at least 2 s"):
        read_source(short)


def test_small_photos_are_refused_and_odd_sizes_made_even(tmp_path):
    import cv2

    cv2.imwrite(str(tmp_path / "tiny.png"), np.zeros((100, 300, 3), np.uint8))
    with pytest.raises(AvatarSourceError, match="at least 128"):
        read_source(tmp_path / "tiny.png")
    cv2.imwrite(str(tmp_path / "odd.jpg"), np.zeros((201, 333, 3), np.uint8))
    source = read_source(tmp_path / "odd.jpg")
    assert source.kind == "photo" and source.frames.shape == (1, 200, 332, 3)


def test_a_dropped_frame_before_the_end_does_not_stretch_the_clip():
    # 30 fps with the next-to-last frame missing: the last frame still lasts 1/30 s.
    times = [i / 30 for i in range(59)] + [60 / 30]
    out = resample([(t, np.full((2, 2, 3), i, np.uint8)) for i, t in enumerate(times)], 25)
    assert len(out) == 51  # (2.0 + 1/30) s at 25 fps
    assert int(out[-1][0, 0, 0]) == 59
