"""What a received video stream must be, checked from its timestamps, not its arrival rate."""

import numpy as np

from engine.constants import PTS_PER_VIDEO_FRAME
from server.bench.client import Received

RTP_VIDEO_RATE = 90_000


def default_frame_size() -> tuple[int, int]:
    """(width, height) of the shipped default avatar's frames: what a session sends."""
    from engine.avatar.bundle import DEFAULT_AVATARS, AvatarLibrary

    manifest = AvatarLibrary(DEFAULT_AVATARS).get("default").manifest
    return manifest.width, manifest.height


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


def assert_on_the_media_clock(
    received: Received, max_growth_s: float = 0.12, queued_frames: int = 2
) -> None:
    """Every frame sits on the sender's 25 fps grid, in order, and the stream's media time
    keeps pace with the clock: a server that falls behind skips ticks, it never sends them
    late.

    Two checks on the lag (arrival minus media time). Once the stream has settled (its
    middle third against its last third) the lag no longer grows: a sender that sends ticks
    late grows it for as long as it runs. Over the whole stream it grows by at most
    `max_growth_s` plus what the sender's drop-oldest queue of `queued_frames` frames can
    hold at the rate the stream ended on: a host too slow for 25 fps degrades the rate, and
    while it does, a frame may wait behind the one before it (the bound a viewer sees)."""
    steps = frame_steps(received)
    assert steps.size >= 10, f"only {steps.size + 1} frames received"
    assert np.all(steps >= 1) and np.allclose(steps, np.round(steps)), steps
    lag = media_lag(received)
    third = lag.size // 3
    first, middle, last = (float(np.median(lag[i * third : (i + 1) * third])) for i in range(3))
    assert last - middle < max_growth_s, (
        f"the stream keeps falling behind its clock: {(last - middle) * 1000:.0f} ms "
        "in its last third"
    )
    period_s = float(np.median(steps[-third:])) * PTS_PER_VIDEO_FRAME / RTP_VIDEO_RATE
    bound = max_growth_s + queued_frames * period_s
    assert last - first < bound, (
        f"the stream fell {(last - first) * 1000:.0f} ms behind its clock "
        f"(at most {bound * 1000:.0f} ms at {1 / period_s:.1f} fps)"
    )
