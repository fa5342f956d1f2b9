"""How many sessions this machine serves at full rate, measured; and how the server degrades
when it cannot serve them all.

    capacity = Capacity(cores=2, render_threads=2, prior=FrameCost(0.012, 0.012, 0.018))
    capacity.rendered(seconds)                # each frame: its render's wall time on the pool
    capacity.ticked(seconds, missed)          # each session's tick: its frame's time, misses
    capacity.update(sessions, machine.read(), now)   # once a second (a server task)
    capacity.refusal(sessions)                # None, or why one more session would not fit
    capacity.rate, capacity.serves(tick)      # the share of ticks every session is served

The model. Over the last ``WINDOW_S`` a frame costs, on average, ``render_s`` of a render
thread's wall time, ``frame_s`` of its session's clock (asking for it until it is encoded:
a session's frames follow one another) and ``cpu_s`` of this process's CPU time (all its
threads: audio, WebRTC and encoding included). ``n`` sessions served a share ``q`` of the
25 fps ticks make ``f = n * 25 * q`` frames a second and load three resources, each as a
fraction of what there is:

    pool    f * render_s / render_threads
    cpu     (f * cpu_s + cores busy outside this process) / cores
    serial  25 * q * frame_s                   (one session's clock)

A resource at ``TARGET`` or above is full. Until ``MIN_FRAMES`` frames are measured the
costs come from ``prior`` (timed when the server starts, ``calibrate``), its CPU scaled
by ``PRIOR_OVERHEAD`` for the WebRTC and audio work a calibration frame does not do.

Admission (``--max-sessions auto``): one more session is admitted while the load of
``n + 1`` sessions at full rate stays under ``TARGET`` and the server is not degraded;
the first session always is.

Degradation: when ticks miss their deadline (``MISS_LIMIT`` of them over the window) or
the render threads' or a session clock's load is over 1, every session goes down the
same ``LADDER`` of rates (20, 16.7, 12.5, 8.3 fps: 4 of every 5 ticks, 2 of 3, 1 of 2, 1
of 3, spread evenly) to the highest at which the load fits under ``DEGRADED_TARGET``; it
climbs back one rung at a time once the rung above would load under ``RECOVER`` of that
and the rate has held for ``HOLD_S`` (hysteresis: it does not oscillate). The CPU
estimate alone never degrades (the scheduler shares cores per thread, not per process);
CPU contention degrades through the misses it causes. A late frame never delays the next
one: the session clock skips ticks it missed (server.session), so latency does not grow.
"""

import math
import os
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import TypeVar

from engine.constants import VIDEO_FPS

TARGET = 0.85  # a resource loaded to this fraction is full
DEGRADED_TARGET = 0.95  # degraded, the rate is the highest that loads under this
RECOVER = 0.8  # a rung up once it would load under RECOVER * DEGRADED_TARGET
# The fraction of ticks missing their deadline that degrades the server: the first rung
# serves 80 % of ticks evenly, worth it only when misses already cost about that much.
MISS_LIMIT = 0.10
WINDOW_S = 3.0
HOLD_S = 5.0  # the least time between two changes of the rate
MIN_FRAMES = 25  # frames measured before the measurement replaces the prior
# A session's start (its DTLS handshake, first keyframes, its peer's decoder starting)
# makes every session miss ticks for a moment: misses are not counted this long after.
SETTLE_S = 2.0
# Shares of the 25 fps ticks served; below 8.3 fps a face no longer reads as speaking.
LADDER = (Fraction(1), Fraction(4, 5), Fraction(2, 3), Fraction(1, 2), Fraction(1, 3))
PRIOR_OVERHEAD = 1.5
RETRY_AFTER_S = 5


@dataclass(frozen=True)
class FrameCost:
    """What one video frame costs, seconds."""

    render_s: float  # a render thread's wall time
    frame_s: float  # the session clock's wall time: asked for -> encoded
    cpu_s: float  # this process's CPU time, all threads


@dataclass(frozen=True)
class MachineSample:
    """Cumulative CPU seconds at one moment (``MachineMeter.read``)."""

    process_s: float  # this process, all threads
    busy_s: float  # every process, on the cores this process may use
    cores: int


class MachineMeter:
    """CPU use of this process (``time.process_time``) and of the cores it may run on
    (their lines of /proc/stat; its CPU affinity, so ``taskset`` limits both)."""

    def __init__(self, stat: Path = Path("/proc/stat")) -> None:
        self._stat = stat
        self._cores = sorted(os.sched_getaffinity(0))
        self._tick = os.sysconf("SC_CLK_TCK")

    def read(self) -> MachineSample:
        busy = 0.0
        names = {f"cpu{core}" for core in self._cores}
        try:
            lines = self._stat.read_text().splitlines()
        except OSError:
            lines = []  # no /proc (not Linux): other processes' load is taken as none
        for line in lines:
            name, *fields = line.split()
            if name in names:
                values = [int(v) for v in fields[:8]]
                idle = values[3] + values[4]  # idle + iowait
                busy += (sum(values) - idle) / self._tick
        process = time.process_time()
        return MachineSample(process, busy if lines else process, len(self._cores))


@dataclass(frozen=True)
class Load:
    pool: float
    cpu: float
    serial: float

    @property
    def worst(self) -> float:
        return max(self.pool, self.cpu, self.serial)

    @property
    def limit(self) -> str:
        """The resource that is fullest."""
        return max(("pool", "cpu", "serial"), key=lambda name: getattr(self, name))


class Capacity:
    def __init__(
        self,
        cores: int,
        render_threads: int,
        prior: FrameCost,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.cores = cores
        self.render_threads = render_threads
        self.prior = prior
        self._clock = clock
        self.rung = 0  # LADDER[rung]: the share of ticks every session is served
        self.reason: str | None = None  # why it is below full rate
        self.changes = 0  # how many times the rate went down (degradations)
        self._changed_at = -math.inf
        self._settled_at = -math.inf  # misses before this are not counted
        self._renders: deque[tuple[float, float]] = deque()  # (when, render seconds)
        self._ticks: deque[tuple[float, float, int]] = deque()  # (when, frame s, missed)
        self._samples: deque[tuple[float, MachineSample]] = deque()
        self.sessions_fit = 0
        self.load = Load(0.0, 0.0, 0.0)  # of the sessions now, at the current rate

    # ------------------------------------------------------------ measurements

    def started(self) -> None:
        """A session started: what it does to everyone's ticks for ``SETTLE_S`` is not a
        sign of overload."""
        self._settled_at = self._clock() + SETTLE_S

    def rendered(self, seconds: float) -> None:
        self._renders.append((self._clock(), seconds))

    def ticked(self, seconds: float | None, missed: int = 0) -> None:
        """A session's tick: ``seconds`` its frame took on its clock (None: it sent none),
        ``missed`` the ticks before it that its clock skipped because it ran late."""
        self._ticks.append((self._clock(), -1.0 if seconds is None else seconds, missed))

    def measured(self) -> FrameCost | None:
        """The mean cost of a frame over the window; None until ``MIN_FRAMES`` are seen."""
        frames = [s for _, s, _ in self._ticks if s >= 0]
        renders = [s for _, s in self._renders]
        cpu = self._cpu_per_frame()
        if len(frames) < MIN_FRAMES or len(renders) < MIN_FRAMES or cpu is None:
            return None
        return FrameCost(sum(renders) / len(renders), sum(frames) / len(frames), cpu)

    def cost(self) -> FrameCost:
        """The measured cost of a frame, or the prior's until there is one."""
        if (cost := self.measured()) is not None:
            return cost
        p = self.prior
        return FrameCost(p.render_s, p.frame_s, p.cpu_s * PRIOR_OVERHEAD)

    def _cpu_per_frame(self) -> float | None:
        """This process's CPU seconds between the window's first and last samples over
        the frames rendered between them."""
        if len(self._samples) < 2:
            return None
        (t0, first), (t1, last) = self._samples[0], self._samples[-1]
        frames = sum(1 for when, _ in self._renders if t0 < when <= t1)
        return (last.process_s - first.process_s) / frames if frames else None

    def outside_cores(self) -> float:
        """Cores kept busy by other processes over the window."""
        if len(self._samples) < 2:
            return 0.0
        (t0, first), (t1, last) = self._samples[0], self._samples[-1]
        busy = (last.busy_s - first.busy_s) - (last.process_s - first.process_s)
        return max(0.0, busy / (t1 - t0)) if t1 > t0 else 0.0

    def misses(self) -> float:
        """The fraction of ticks over the window, since the rate last changed and the
        last session settled in, whose deadline passed unserved."""
        since = max(self._changed_at, self._settled_at)
        ticks = [(s, m) for when, s, m in self._ticks if when > since]
        sent = sum(1 for s, _ in ticks if s >= 0)
        missed = sum(m for _, m in ticks)
        return missed / (sent + missed) if sent + missed else 0.0

    # ------------------------------------------------------------ the model

    def load_of(self, sessions: int, rung: int = 0) -> Load:
        """The load of ``sessions`` served at ``LADDER[rung]``, on what is measured now."""
        return self._load(self._estimate(), sessions, rung)

    def _estimate(self) -> tuple[FrameCost, float]:
        """What the model runs on: the cost of a frame and the cores others keep busy.
        Each scans the window, so ``update`` takes it once for all its questions."""
        return self.cost(), self.outside_cores()

    def _load(self, estimate: tuple[FrameCost, float], sessions: int, rung: int = 0) -> Load:
        (cost, outside), share = estimate, float(LADDER[rung])
        frames = sessions * VIDEO_FPS * share
        return Load(
            pool=frames * cost.render_s / self.render_threads,
            cpu=(frames * cost.cpu_s + outside) / self.cores,
            serial=VIDEO_FPS * share * cost.frame_s if sessions else 0.0,
        )

    def _fitting_rung(self, estimate: tuple[FrameCost, float], sessions: int) -> int:
        for rung in range(len(LADDER)):
            if self._load(estimate, sessions, rung).worst < DEGRADED_TARGET:
                return rung
        return len(LADDER) - 1

    def update(self, sessions: int, machine: MachineSample, now: float | None = None) -> None:
        """Once a second: forget what left the window, re-estimate, choose the rate."""
        now = self._clock() if now is None else now
        self._samples.append((now, machine))
        self.cores = machine.cores
        horizon = now - WINDOW_S
        for queue in (self._renders, self._ticks):
            while queue and queue[0][0] < horizon:
                queue.popleft()
        while len(self._samples) > 1 and self._samples[0][0] < horizon:
            self._samples.popleft()
        estimate = self._estimate()
        self.sessions_fit = self._sessions_fit(estimate)
        self._choose_rate(estimate, sessions, now)
        self.load = self._load(estimate, sessions, self.rung)

    def _sessions_fit(self, estimate: tuple[FrameCost, float]) -> int:
        n = 0
        while n < 64 and self._load(estimate, n + 1).worst < TARGET:
            n += 1
        return n

    def _choose_rate(self, estimate: tuple[FrameCost, float], sessions: int, now: float) -> None:
        if not sessions:
            self._set_rung(0, None, now)
            return
        misses, current = self.misses(), self._load(estimate, sessions, self.rung)
        if now - self._changed_at < WINDOW_S:
            misses = 0.0  # the window still holds ticks of the change itself
        last = len(LADDER) - 1
        # Overload by the model counts for the resources timed in wall time (the render
        # threads, a session's clock); the CPU's share is an estimate (the scheduler
        # shares cores per thread, not per process), so CPU contention degrades only
        # through the misses it causes. The CPU estimate still picks the rung.
        overloaded = max(current.pool, current.serial) > 1.0
        if self.rung < last and (misses >= MISS_LIMIT or overloaded):
            rung = self._fitting_rung(estimate, sessions)
            if misses >= MISS_LIMIT:
                rung = max(rung, self.rung + 1)  # the model missed something: a rung at least
            wall = "pool" if current.pool >= current.serial else "serial"
            why = (
                f"{misses:.0%} of frames missed their deadline"
                if misses >= MISS_LIMIT
                else f"{wall} load {getattr(current, wall):.0%}"
            )
            self._set_rung(rung, why, now)
            return
        if (
            self.rung > 0
            and now - self._changed_at >= HOLD_S
            and self._load(estimate, sessions, self.rung - 1).worst < RECOVER * DEGRADED_TARGET
            and misses < MISS_LIMIT / 2
        ):
            self._set_rung(self.rung - 1, self.reason if self.rung > 1 else None, now)

    def _set_rung(self, rung: int, reason: str | None, now: float) -> None:
        if rung == self.rung:
            return
        if rung > self.rung:
            self.changes += 1
        self.rung, self.reason, self._changed_at = rung, reason, now

    @property
    def rate(self) -> Fraction:
        """The share of the 25 fps ticks every session is served now."""
        return LADDER[self.rung]

    @property
    def fps(self) -> float:
        return VIDEO_FPS * float(self.rate)

    def serves(self, tick: int) -> bool:
        """Whether a session draws video tick ``tick`` at the current rate: p of every q
        ticks, spread evenly (4 of 5: ticks 0, 2, 3, 4, then 5, 7, 8, 9, ...)."""
        return serves(tick, self.rate)

    def summary(self) -> dict:
        """For /healthz and stats: what the model sees now."""
        cost = self.cost()
        return {
            "sessions_fit": self.sessions_fit,
            "fps": round(self.fps, 2),
            "rate": str(self.rate),
            "degraded": self.reason,
            "load": {k: round(getattr(self.load, k), 3) for k in ("pool", "cpu", "serial")},
            "frame_ms": {
                "render": round(1000 * cost.render_s, 2),
                "frame": round(1000 * cost.frame_s, 2),
                "cpu": round(1000 * cost.cpu_s, 2),
            },
            "outside_cores": round(self.outside_cores(), 2),
            "misses": round(self.misses(), 3),
        }

    def refusal(self, sessions: int) -> str | None:
        """None if one more session fits beside ``sessions``; else why not. The first
        session is always admitted: served at the rate its cost allows, it is better off
        than refused."""
        if sessions == 0:
            return None
        if self.rung > 0:
            return (
                f"the server is degraded ({self.fps:.1f} fps for every session: "
                f"{self.reason}); it admits no new session until it recovers"
            )
        load = self.load_of(sessions + 1)
        if load.worst >= TARGET:
            return (
                f"no headroom for another session: {sessions + 1} would load the "
                f"{load.limit} to {load.worst:.0%} (limit {TARGET:.0%})"
            )
        return None


def serves(tick: int, rate: Fraction) -> bool:
    """Whether tick ``tick`` is one of the ``rate`` share of ticks served, spread evenly."""
    return (tick * rate.numerator) % rate.denominator < rate.numerator


Image = TypeVar("Image")


def calibrate(
    draw: Callable[[int], Image], encode: Callable[[Image], object], frames: int = 12
) -> FrameCost:
    """Time ``frames`` whole frames, after two untimed warm-up frames: ``draw(i)`` (what a
    render thread does: draw and convert) then ``encode`` of its result. The draw's wall
    time is the render cost, draw and encode together the frame's, and the process's CPU
    time over both the CPU cost."""
    for i in range(2):
        encode(draw(i))
    drawing = 0.0
    wall, cpu = time.perf_counter(), time.process_time()
    for i in range(2, 2 + frames):
        started = time.perf_counter()
        image = draw(i)
        drawing += time.perf_counter() - started
        encode(image)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    return FrameCost(render_s=drawing / frames, frame_s=wall / frames, cpu_s=cpu / frames)
