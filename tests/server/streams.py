"""What a received video stream must be, checked from its timestamps, not its arrival rate."""

import numpy as np

from engine.constants import PTS_PER_VIDEO_FRAME
from server.client import Received

RTP_VIDEO_RATE = 90_000


def frame_steps(received: Received) -> np.ndarray:
    """Video frame periods between consecutive received frames (1: none skipped), from
    their RTP timestamps (32-bit, wrapping)."""
    pts = np.array(received.video_pts, dtype=np.int64)
    return ((np.diff(pts) % 2**32) / PTS_PER_VIDEO_FRAME).astype(np.float64)


def media_lag(received: Received) -> np.ndarray:
    """Arrival of each frame minus its media time, both from the first frame, seconds."""
    steps = np.concatenate([[0.0], np.cumsum(frame_steps(received))])
    media = steps * PTS_PER_VIDEO_FRAME / RTP_VIDEO_RATE
    times = np.array(received.video_times)
    return (times - times[0]) - media


def assert_on_the_media_clock(received: Received, max_growth_s: float = 0.12) -> None:
    """Every frame sits on the sender's 25 fps grid, in order, and the stream's media time
    keeps pace with the clock: a server that falls behind skips ticks, it never sends them
    late (the lag of the last third of the frames is that of the first third)."""
    steps = frame_steps(received)
    assert steps.size >= 10, f"only {steps.size + 1} frames received"
    assert np.all(steps >= 1) and np.allclose(steps, np.round(steps)), steps
    lag = media_lag(received)
    third = lag.size // 3
    growth = float(np.median(lag[-third:]) - np.median(lag[:third]))
    assert growth < max_growth_s, f"the stream fell {growth * 1000:.0f} ms behind its clock"
