import pytest

from engine.playout import PlayoutClock


def feed(clock: PlayoutClock, arrivals):
    for media_end, now in arrivals:
        clock.on_input(media_end, now)


def test_fixed_delay_from_the_earliest_arrival_despite_jitter():
    clock = PlayoutClock(delay_s=0.2)
    # 20 ms packets sent at media t, arriving 50 ms later plus up to 30 ms of jitter
    jitter = [0.0, 0.03, 0.01, 0.025, 0.0, 0.02]
    feed(clock, [(0.02 * (i + 1), 100 + 0.02 * (i + 1) + 0.05 + j) for i, j in enumerate(jitter)])
    assert clock.offset_s == pytest.approx(100.05)
    assert clock.media_time_at(100.05 + 0.2 + 1.0) == pytest.approx(1.0)


def test_latency_does_not_grow_when_the_sender_clock_runs_slow():
    clock = PlayoutClock(delay_s=0.2, window_s=2.0)
    # sender clock 1% slow: media time advances 0.99 s per second of ours
    for i in range(1, 3000):
        now = i * 0.02
        clock.on_input(0.99 * now, now)
    now = 3000 * 0.02
    latest_media = 0.99 * now
    assert latest_media - clock.media_time_at(now) == pytest.approx(0.2, abs=0.03)


def test_playout_never_goes_backwards_and_stalls_hold():
    clock = PlayoutClock(delay_s=0.1, window_s=0.5)
    feed(clock, [(0.02 * i, 10 + 0.02 * i) for i in range(1, 50)])
    before = clock.media_time_at(11.0)
    # a route change: everything now arrives 300 ms later
    feed(clock, [(0.02 * i, 10.3 + 0.02 * i) for i in range(50, 120)])
    assert clock.media_time_at(11.01) >= before
    assert clock.media_time_at(12.5) == pytest.approx(12.5 - 0.1 - 10.3, abs=1e-9)


def test_no_input_means_no_playout():
    clock = PlayoutClock(0.1)
    assert clock.media_time_at(5.0) is None
    clock.on_input(0.02, 1.0)
    assert clock.media_time_at(5.0) is not None
    clock.reset()
    assert clock.media_time_at(5.0) is None
