"""The stream-clock check itself: it passes a sender that degrades its rate and fails one
that sends its ticks late."""

import numpy as np
import pytest

from engine.constants import PTS_PER_VIDEO_FRAME
from server.bench.client import Received
from tests.server.streams import assert_on_the_media_clock

PERIOD_S = 0.04


def stream(ticks: list[int], delays_s: list[float]) -> Received:
    """Frames on `ticks` of the 25 fps grid, each arriving `delay` after its media time."""
    return Received(
        video_pts=[t * PTS_PER_VIDEO_FRAME % 2**32 for t in ticks],
        video_times=[1000.0 + t * PERIOD_S + d for t, d in zip(ticks, delays_s, strict=True)],
    )


def test_a_steady_stream_passes_even_across_the_rtp_wrap():
    ticks = list(range(2**32 // PTS_PER_VIDEO_FRAME - 50, 2**32 // PTS_PER_VIDEO_FRAME + 50))
    assert_on_the_media_clock(stream(ticks, [0.05] * len(ticks)))


def test_a_stream_that_degrades_to_every_third_tick_passes():
    ticks = list(range(60)) + list(range(60, 300, 3))
    delays = [0.05 if t < 60 else 0.05 + 0.15 for t in ticks]  # one frame waits behind another
    assert_on_the_media_clock(stream(ticks, delays))


def test_a_sender_that_sends_its_ticks_later_and_later_fails():
    ticks = list(range(150))
    delays = list(0.05 + 0.003 * np.arange(150))  # 3 ms later each frame: 0.45 s in 6 s
    with pytest.raises(AssertionError, match="keeps falling behind"):
        assert_on_the_media_clock(stream(ticks, delays))


def test_a_step_beyond_what_the_queue_can_hold_fails():
    ticks = list(range(150))
    delays = [0.05 if t < 50 else 0.30 for t in ticks]  # 250 ms: more than 120 + 2 x 40
    with pytest.raises(AssertionError, match="fell 250 ms behind"):
        assert_on_the_media_clock(stream(ticks, delays))


def test_off_grid_frames_fail():
    ticks = list(range(50))
    received = stream(ticks, [0.05] * 50)
    received.video_pts[10] += PTS_PER_VIDEO_FRAME // 2
    with pytest.raises(AssertionError):
        assert_on_the_media_clock(received)
