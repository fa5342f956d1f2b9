"""How many sessions this machine serves at full rate, measured; and how the server degrades
when it cannot serve them all.

    capacity = Capacity(cores=2, render_threads=2, prior=FrameCost(0.012, 0.012, 0.018))
    capacity.rendered(seconds)                # each frame: its render's wall time on the pool
    capacity.ticked(seconds, missed)          # each session's tick: its frame's time, misses
    capacity.update(sessions, machine.read(), now)   # once a second (a server task)
    capacity.refusal(sessions)                # None, or why one more session would not fit
    capacity.step                             # 1: every tick (25 fps); 2: every other ...

The model. Over the last ``WINDOW_S`` a frame costs, on average, ``render_s`` of a render
thread's wall time, ``frame_s`` of its session's clock (asking for it until it is encoded:
a session's frames follow one another) and ``cpu_s`` of this process's CPU time (all its
threads: audio, WebRTC and encoding included). ``n`` sessions at frame step ``k`` make
``r = n * 25 / k`` frames a second and load three resources, each as a fraction of what
there is:

    pool    r * render_s / render_threads
    cpu     (r * cpu_s + cores busy outside this process) / cores
    serial  (25 / k) * frame_s                 (one session's clock)

A resource at ``TARGET`` or above is full. Until ``MIN_FRAMES`` frames are measured the
costs come from ``prior`` (timed when the server starts, ``calibrate``), its CPU scaled
by ``PRIOR_OVERHEAD`` for the WebRTC and audio work a calibration frame does not do.

Admission (``--max-sessions auto``): one more session is admitted while the load of
``n + 1`` sessions at full rate stays under ``TARGET`` and the server is not degraded;
the first session always is.

Degradation: when ticks miss their deadline (``MISS_LIMIT`` of them over the window) or
the load is over 1, every session goes to the same larger frame step (12.5 fps, then
8.3 fps), the smallest at which the load fits; the step comes back down one at a time
once the lower step's load is under ``RECOVER`` of the target and the step has held for
``HOLD_S`` (hysteresis: it does not oscillate). A late frame never delays the next one:
the session clock skips ticks it missed (server.session), so latency does not grow.
"""

import math
import os
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from engine.constants import VIDEO_FPS

TARGET = 0.85  # a resource loaded to this fraction is full
RECOVER = 0.8  # the step comes down when the lower step's load is under RECOVER * TARGET
MISS_LIMIT = 0.05  # fraction of ticks missing their deadline that degrades the server
WINDOW_S = 3.0
HOLD_S = 5.0  # the least time between two changes of the step
MIN_FRAMES = 25  # frames measured before the measurement replaces the prior
MAX_STEP = 3  # 25 / 3 = 8.3 fps: below it a face no longer reads as speaking
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
        self.step = 1
        self.reason: str | None = None  # why the step is above 1
        self.changes = 0  # how many times the step went up (degradations)
        self._changed_at = -math.inf
        self._renders: deque[tuple[float, float]] = deque()  # (when, render seconds)
        self._ticks: deque[tuple[float, float, int]] = deque()  # (when, frame s, missed)
        self._samples: deque[tuple[float, MachineSample]] = deque()
        self._sessions = 0
        self.sessions_fit = 0
        self.load = Load(0.0, 0.0, 0.0)  # of the sessions now, at the current step

    # ------------------------------------------------------------ measurements

    def rendered(self, seconds: float) -> None:
        self._renders.append((self._clock(), seconds))

    def ticked(self, seconds: float | None, missed: int = 0) -> None:
        """A session's tick: ``seconds`` its frame took on its clock (None: it sent none),
        ``missed`` the ticks before it that its clock skipped because it ran late."""
        self._ticks.append((self._clock(), -1.0 if seconds is None else seconds, missed))

    def cost(self) -> FrameCost:
        """The mean cost of a frame over the window (the prior until enough are seen)."""
        frames = [s for _, s, _ in self._ticks if s >= 0]
        renders = [s for _, s in self._renders]
        cpu = self._cpu_per_frame()
        if len(frames) < MIN_FRAMES or len(renders) < MIN_FRAMES or cpu is None:
            p = self.prior
            return FrameCost(p.render_s, p.frame_s, p.cpu_s * PRIOR_OVERHEAD)
        return FrameCost(sum(renders) / len(renders), sum(frames) / len(frames), cpu)

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
        """The fraction of ticks over the window whose deadline passed unserved."""
        sent = sum(1 for _, s, _ in self._ticks if s >= 0)
        missed = sum(m for _, _, m in self._ticks)
        return missed / (sent + missed) if sent + missed else 0.0

    # ------------------------------------------------------------ the model

    def load_of(self, sessions: int, step: int) -> Load:
        cost = self.cost()
        rate = sessions * VIDEO_FPS / step
        return Load(
            pool=rate * cost.render_s / self.render_threads,
            cpu=(rate * cost.cpu_s + self.outside_cores()) / self.cores,
            serial=(VIDEO_FPS / step) * cost.frame_s if sessions else 0.0,
        )

    def _fitting_step(self, sessions: int) -> int:
        for step in range(1, MAX_STEP + 1):
            if self.load_of(sessions, step).worst < TARGET:
                return step
        return MAX_STEP

    def update(self, sessions: int, machine: MachineSample, now: float | None = None) -> None:
        """Once a second: forget what left the window, re-estimate, choose the step."""
        now = self._clock() if now is None else now
        self._sessions = sessions
        self._samples.append((now, machine))
        self.cores = machine.cores
        horizon = now - WINDOW_S
        for queue in (self._renders, self._ticks):
            while queue and queue[0][0] < horizon:
                queue.popleft()
        while len(self._samples) > 1 and self._samples[0][0] < horizon:
            self._samples.popleft()
        self.sessions_fit = self._sessions_fit()
        self._choose_step(sessions, now)
        self.load = self.load_of(sessions, self.step)

    def _sessions_fit(self) -> int:
        n = 0
        while n < 64 and self.load_of(n + 1, 1).worst < TARGET:
            n += 1
        return n

    def _choose_step(self, sessions: int, now: float) -> None:
        if not sessions:
            self._set_step(1, None, now)
            return
        misses, current = self.misses(), self.load_of(sessions, self.step)
        if now - self._changed_at < WINDOW_S:
            misses = 0.0  # the window still holds ticks of the change itself
        fitting = self._fitting_step(sessions)
        if self.step < MAX_STEP and (misses >= MISS_LIMIT or current.worst > 1.0):
            step = max(fitting, self.step + 1) if misses >= MISS_LIMIT else fitting
            if step > self.step:
                why = (
                    f"{misses:.0%} of frames missed their deadline"
                    if misses >= MISS_LIMIT
                    else f"{current.limit} load {current.worst:.0%}"
                )
                self._set_step(step, why, now)
            return
        lower = self.load_of(sessions, self.step - 1) if self.step > 1 else None
        if (
            lower is not None
            and now - self._changed_at >= HOLD_S
            and lower.worst < RECOVER * TARGET
            and misses < MISS_LIMIT / 2
        ):
            self._set_step(self.step - 1, self.reason if self.step > 2 else None, now)

    def _set_step(self, step: int, reason: str | None, now: float) -> None:
        if step == self.step:
            return
        if step > self.step:
            self.changes += 1
        self.step, self.reason, self._changed_at = step, reason, now
        self._ticks.clear()  # misses at the old step say nothing about the new one

    @property
    def fps(self) -> float:
        return VIDEO_FPS / self.step

    def summary(self) -> dict:
        """For /healthz and stats: what the model sees now."""
        cost = self.cost()
        return {
            "sessions_fit": self.sessions_fit,
            "fps": round(self.fps, 2),
            "frame_step": self.step,
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
        session is always admitted: served at the step its cost allows, it is better off
        than refused."""
        if sessions == 0:
            return None
        if self.step > 1:
            return (
                f"the server is degraded ({self.fps:.1f} fps for every session: "
                f"{self.reason}); it admits no new session until it recovers"
            )
        load = self.load_of(sessions + 1, 1)
        if load.worst >= TARGET:
            return (
                f"no headroom for another session: {sessions + 1} would load the "
                f"{load.limit} to {load.worst:.0%} (limit {TARGET:.0%})"
            )
        return None


def calibrate(render_frame: Callable[[int], object], frames: int = 12) -> FrameCost:
    """Time ``render_frame(i)`` (one whole frame: draw, finish, encode) ``frames`` times
    after two untimed warm-up frames; its wall time stands for all three costs' wall
    parts and the process's CPU time for the CPU part."""
    for i in range(2):
        render_frame(i)
    wall, cpu = time.perf_counter(), time.process_time()
    for i in range(2, 2 + frames):
        render_frame(i)
    wall, cpu = (time.perf_counter() - wall) / frames, (time.process_time() - cpu) / frames
    return FrameCost(render_s=wall, frame_s=wall, cpu_s=cpu)
