import numpy as np
import pytest

from engine.playout import MarginPolicy, PlayoutClock, PlayoutMargin


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


# ---------------------------------------------------------------- the measured margin

FPS = 25


def run_margin(margin: PlayoutMargin, lateness, start: float = 0.0) -> list[float]:
    """Feed one lateness per frame at 25 fps from ``start``; the margin after each."""
    return [margin.observe(late, start + i / FPS) for i, late in enumerate(lateness)]


def test_the_margin_falls_to_what_steady_lateness_needs_only_after_the_hold():
    margin = PlayoutMargin(MarginPolicy(initial_s=0.08, hold_s=3.0))
    rng = np.random.default_rng(0)
    values = run_margin(margin, 0.02 + 0.01 * rng.random(10 * FPS))  # 20-30 ms late
    assert values[2 * FPS] == 0.08  # 2 s in: still held
    needed = margin.lateness_quantile() + margin.policy.guard_s
    assert margin.value_s == pytest.approx(needed + margin.policy.band_s / 3, abs=0.002)
    assert margin.value_s >= 0.03 + margin.policy.guard_s  # p99 covers nearly every frame
    assert len(set(values)) <= 3  # held, then one step down: no creeping


def test_the_margin_rises_at_once_when_frames_come_later():
    margin = PlayoutMargin(MarginPolicy(initial_s=0.03))
    run_margin(margin, [0.01] * (5 * FPS))
    assert margin.value_s == pytest.approx(0.03)
    # a route change: now 10 % of frames come 90 ms late
    late = [0.09 if i % 10 == 0 else 0.01 for i in range(2 * FPS)]
    values = run_margin(margin, late, start=5.0)
    first = next(i for i, v in enumerate(values) if v > 0.09)
    assert first <= 1 * FPS  # within a second
    assert margin.value_s == pytest.approx(0.09 + margin.policy.guard_s, abs=0.002)


def test_a_single_late_frame_does_not_move_a_settled_margin():
    margin = PlayoutMargin(MarginPolicy(initial_s=0.04))
    run_margin(margin, [0.01] * (10 * FPS))
    settled = margin.value_s
    run_margin(margin, [0.2] + [0.01] * FPS, start=10.0)  # one GC pause: 1 frame in 250
    assert margin.value_s == settled


def test_noisy_lateness_near_the_band_does_not_make_the_margin_oscillate():
    margin = PlayoutMargin(MarginPolicy(initial_s=0.05))
    rng = np.random.default_rng(1)
    values = run_margin(margin, rng.normal(0.02, 0.01, 120 * FPS))  # two minutes
    changes = np.count_nonzero(np.diff(values))
    downs = np.count_nonzero(np.diff(values) < 0)
    assert downs <= 3 and changes <= 40, (downs, changes)
    assert 0.04 <= margin.value_s <= 0.08  # p99 of N(20, 10) ms is 43 ms, plus the guard


def test_the_margin_stays_within_its_bounds():
    policy = MarginPolicy(initial_s=0.05, floor_s=0.02, ceiling_s=0.25)
    high = PlayoutMargin(policy)
    assert max(run_margin(high, [1.0] * (2 * FPS))) == 0.25
    low = PlayoutMargin(policy)
    assert min(run_margin(low, [-0.5] * (20 * FPS))) >= 0.02


def test_a_fixed_margin_never_moves_and_early_frames_only_raise_it():
    fixed = PlayoutMargin(MarginPolicy(fixed_s=0.08))
    assert set(run_margin(fixed, np.linspace(-0.1, 0.5, 100))) == {0.08}
    early = PlayoutMargin(MarginPolicy(initial_s=0.03, min_samples=25))
    values = run_margin(early, [0.0, 0.05, 0.0, 0.0])  # before 25 samples: only up
    assert values == pytest.approx([0.03, 0.055, 0.055, 0.055])  # 50 ms late + the 5 ms guard


def test_bad_policies_say_what_is_wrong():
    with pytest.raises(ValueError, match="floor <= initial <= ceiling"):
        MarginPolicy(initial_s=0.5, ceiling_s=0.25)
    with pytest.raises(ValueError, match="fixed margin"):
        MarginPolicy(fixed_s=-1)
