"""The capacity model on a clock and a machine the test controls: admission, degradation
and recovery follow from the costs fed in, the same on any machine."""

import itertools
import os
from fractions import Fraction

import pytest

from engine.constants import VIDEO_FPS
from server.capacity import (
    HOLD_S,
    LADDER,
    PRIOR_OVERHEAD,
    TARGET,
    WINDOW_S,
    Capacity,
    FrameCost,
    MachineMeter,
    MachineSample,
    serves,
)

PERIOD_S = 1 / VIDEO_FPS


class Machine:
    """A clock, and this process's and the machine's CPU seconds, advanced by the test."""

    def __init__(self, cores: int = 2) -> None:
        self.now = 100.0
        self.process_s = 0.0
        self.busy_s = 0.0
        self.cores = cores

    def clock(self) -> float:
        return self.now

    def sample(self) -> MachineSample:
        return MachineSample(self.process_s, self.busy_s, self.cores)


def run(
    capacity: Capacity,
    machine: Machine,
    seconds: float,
    sessions: int,
    render_s: float,
    cpu_s: float,
    outside_cores: float = 0.0,
    missed_every: int = 0,
) -> None:
    """``sessions`` served at the capacity's step for ``seconds``: each frame renders in
    ``render_s`` and costs ``cpu_s`` of CPU; every ``missed_every``-th tick is missed."""
    ticks = 0
    for _ in range(round(seconds)):
        frames = round(sessions * VIDEO_FPS * capacity.rate)
        for _ in range(frames):
            machine.now += 1 / frames
            ticks += 1
            if missed_every and ticks % missed_every == 0:
                capacity.ticked(None, missed=1)
                continue
            capacity.rendered(render_s)
            capacity.ticked(render_s + 0.002)
            machine.process_s += cpu_s
            machine.busy_s += cpu_s
        machine.busy_s += outside_cores
        capacity.update(sessions, machine.sample())


@pytest.fixture
def machine() -> Machine:
    return Machine()


def test_before_any_frame_the_calibrated_prior_decides_admission(machine):
    prior = FrameCost(render_s=0.010, frame_s=0.012, cpu_s=0.008)
    capacity = Capacity(2, 2, prior, clock=machine.clock)
    capacity.update(0, machine.sample())
    # cpu: n * 25 * 8 ms * 1.5 / 2 cores = 0.15 n; serial 0.3; pool 0.125 n: 5 fit.
    per_session = VIDEO_FPS * prior.cpu_s * PRIOR_OVERHEAD / 2
    assert capacity.sessions_fit == int(TARGET / per_session) == 5
    assert capacity.refusal(4) is None
    refusal = capacity.refusal(5)
    assert refusal is not None and "cpu" in refusal and "6 would" in refusal


def test_the_first_session_is_always_admitted(machine):
    capacity = Capacity(2, 1, FrameCost(0.060, 0.065, 0.0), clock=machine.clock)
    capacity.update(0, machine.sample())
    assert capacity.sessions_fit == 0 and capacity.refusal(0) is None
    assert capacity.refusal(1) is not None


def test_measured_frames_replace_the_prior(machine):
    capacity = Capacity(2, 2, FrameCost(0.001, 0.001, 0.001), clock=machine.clock)
    run(capacity, machine, WINDOW_S + 1, sessions=1, render_s=0.012, cpu_s=0.020)
    cost = capacity.cost()
    assert cost.render_s == pytest.approx(0.012) and cost.cpu_s == pytest.approx(0.020)
    # cpu: n * 25 * 20 ms / 2 = 0.25 n: three fit (0.75), a fourth would not (1.0).
    assert capacity.sessions_fit == 3
    assert capacity.refusal(2) is None and capacity.refusal(3) is not None


def test_other_processes_on_the_cores_take_headroom(machine):
    capacity = Capacity(2, 2, FrameCost(0.001, 0.001, 0.001), clock=machine.clock)
    run(capacity, machine, WINDOW_S + 1, 1, render_s=0.012, cpu_s=0.020, outside_cores=1.0)
    assert capacity.outside_cores() == pytest.approx(1.0)
    # (0.5 n + 1) / 2 cores < 0.85: one session fits.
    assert capacity.sessions_fit == 1 and capacity.refusal(1) is not None


def test_a_frame_longer_than_the_period_degrades_at_once_without_waiting_for_misses(machine):
    capacity = Capacity(2, 2, FrameCost(0.060, 0.062, 0.001), clock=machine.clock)
    capacity.update(1, machine.sample())
    # 62 ms a frame: 20 fps would load its clock to 124 %, 16.7 fps to 103 %, 12.5 to 78 %.
    assert capacity.rate == Fraction(1, 2) and capacity.fps == VIDEO_FPS / 2
    assert "serial" in capacity.reason
    run(capacity, machine, 3 * HOLD_S, 1, render_s=0.060, cpu_s=0.001)
    assert capacity.rate == Fraction(1, 2) and capacity.changes == 1  # full rate cannot fit


def test_missed_deadlines_degrade_every_session_and_recovery_waits_out_the_hold(machine):
    capacity = Capacity(2, 2, FrameCost(0.010, 0.012, 0.005), clock=machine.clock)
    run(capacity, machine, WINDOW_S + 1, 2, render_s=0.010, cpu_s=0.005)
    assert capacity.rate == 1 and capacity.refusal(2) is None
    # A noisy neighbour: one tick in five misses its deadline. The model sees room (the
    # misses say otherwise), so the rate goes down one rung: 20 fps for both sessions.
    run(capacity, machine, 2, 2, 0.010, 0.005, outside_cores=1.2, missed_every=5)
    assert capacity.rate == LADDER[1] and capacity.fps == 20
    assert "missed their deadline" in capacity.reason
    changed_at = machine.now
    refusal = capacity.refusal(2)
    assert refusal is not None and "degraded" in refusal
    # It leaves; the step comes back once the hold has passed, not before.
    steps = []
    while machine.now < changed_at + 3 * HOLD_S:
        run(capacity, machine, 1, 2, 0.010, 0.005)
        steps.append((machine.now - changed_at, capacity.rung))
    recovered_at = next(t for t, rung in steps if rung == 0)
    assert HOLD_S <= recovered_at <= HOLD_S + WINDOW_S + 1
    assert {rung for t, rung in steps if t >= recovered_at} == {0}  # and stays there
    assert capacity.changes == 1 and capacity.reason is None and capacity.refusal(2) is None


def test_a_load_just_over_the_recovery_line_does_not_oscillate(machine):
    # Full rate would load the CPU to 0.88, 20 fps to 0.70: degraded by misses, it stays
    # there, because going back up would load over RECOVER * DEGRADED_TARGET (0.76).
    cpu_s = 0.88 * 2 / (2 * VIDEO_FPS)
    capacity = Capacity(2, 2, FrameCost(0.005, 0.006, cpu_s), clock=machine.clock)
    run(capacity, machine, WINDOW_S + 1, 2, 0.005, cpu_s)
    assert capacity.rung == 0  # 0.88 is under 1: measured, not degraded by the model
    run(capacity, machine, 1, 2, 0.005, cpu_s, missed_every=2)  # a burst of misses
    assert capacity.rung == 1
    run(capacity, machine, 6 * HOLD_S, 2, 0.005, cpu_s)
    assert capacity.rung == 1 and capacity.changes == 1


def test_cpu_load_by_the_model_alone_refuses_sessions_but_degrades_none(machine):
    # 2 sessions measured at 42 ms of CPU a frame on 2 cores: 105 % by the model, but no
    # tick misses its deadline (the scheduler gave this process more than its share).
    capacity = Capacity(2, 2, FrameCost(0.010, 0.012, 0.042), clock=machine.clock)
    run(capacity, machine, 2 * WINDOW_S, 2, render_s=0.010, cpu_s=0.042)
    assert capacity.load.cpu > 1.0 and capacity.rung == 0
    assert capacity.refusal(2) is not None and capacity.refusal(1) is not None


@pytest.mark.parametrize("rate", LADDER)
def test_each_rate_serves_its_share_of_ticks_spread_evenly(rate):
    served = [t for t in range(300) if serves(t, rate)]
    assert len(served) == 300 * rate
    gaps = {b - a for a, b in itertools.pairwise(served)}
    # Even: down to half rate the gaps are one or two ticks, never a longer hole.
    expected = {1} if rate == 1 else {round(1 / rate)} if rate <= Fraction(1, 2) else {1, 2}
    assert gaps == expected


def test_the_meter_reads_the_cores_this_process_may_use(tmp_path):
    tick = os.sysconf("SC_CLK_TCK")
    stat = tmp_path / "stat"
    lines = ["cpu  900 0 300 9000 0 0 0 0 0 0"]
    lines += [f"cpu{i} {100 * (i + 1)} 0 {50} 1000 {10} 0 0 0 0 0" for i in range(64)]
    stat.write_text("\n".join(lines) + "\n")
    sample = MachineMeter(stat).read()
    cores = sorted(os.sched_getaffinity(0))
    expected = sum(100 * (i + 1) + 50 for i in cores) / tick
    assert sample.cores == len(cores) and sample.busy_s == pytest.approx(expected)
    assert sample.process_s > 0


def test_misses_while_a_session_settles_in_do_not_degrade(machine):
    capacity = Capacity(2, 2, FrameCost(0.010, 0.012, 0.005), clock=machine.clock)
    run(capacity, machine, WINDOW_S + 1, 1, render_s=0.010, cpu_s=0.005)
    capacity.started()  # a second session's handshake and first keyframes
    run(capacity, machine, 1, 2, 0.010, 0.005, missed_every=3)
    assert capacity.rung == 0
    run(capacity, machine, 2, 2, 0.010, 0.005, missed_every=3)  # still missing after
    assert capacity.rung > 0
