"""When to play what: map input media time to wall-clock playout time at a fixed delay.

Media time is the sender's own timeline (RTP timestamps of the microphone audio). The
clock estimates the offset between it and our clock as the *earliest* arrival seen over a
sliding window, so network jitter never pushes playout later, while clock drift and
lasting route changes are followed within ``window_s``. Media time ``m`` plays at
``offset + m + delay``. Playout never goes backwards: if the offset grows, playout holds
(frames repeat); if it shrinks, playout jumps ahead (frames drop). Either way the latency
stays at ``delay`` instead of growing.

``PlayoutMargin`` sets the part of that delay kept for jitter and compute from what each
session measures, with hysteresis (``MarginPolicy``).
"""

from collections import deque
from dataclasses import dataclass

import numpy as np


class PlayoutClock:
    def __init__(self, delay_s: float, window_s: float = 2.0) -> None:
        if delay_s < 0 or window_s <= 0:
            raise ValueError(f"need delay_s >= 0 and window_s > 0, got {delay_s}, {window_s}")
        self.delay_s = delay_s
        self.window_s = window_s
        self._offsets: deque[tuple[float, float]] = deque()  # (arrival, offset), offsets increasing
        self._last_media_time = float("-inf")

    @property
    def started(self) -> bool:
        return bool(self._offsets)

    @property
    def offset_s(self) -> float:
        """Current estimate of (our clock - media time) for on-time packets."""
        if not self._offsets:
            raise RuntimeError("PlayoutClock has seen no input yet")
        return self._offsets[0][1]

    def on_input(self, media_end_s: float, now: float) -> None:
        """Input covering media time up to media_end_s arrived at our time ``now``."""
        offset = now - media_end_s
        while self._offsets and self._offsets[-1][1] >= offset:
            self._offsets.pop()  # a newer, earlier arrival makes older minima irrelevant
        self._offsets.append((now, offset))
        while now - self._offsets[0][0] > self.window_s and len(self._offsets) > 1:
            self._offsets.popleft()

    def media_time_at(self, now: float) -> float | None:
        """Media time whose playout is due at ``now``, never earlier than an answer already
        given; None before any input."""
        media = self.media_time_of(now)
        if media is None:
            return None
        self._last_media_time = max(self._last_media_time, media)
        return self._last_media_time

    def media_time_of(self, now: float) -> float | None:
        """The same without the guard against going back: for a caller that moves
        smoothly over a jump itself (the returned voice)."""
        if not self._offsets:
            return None
        return now - self.delay_s - self.offset_s

    def reset(self) -> None:
        self._offsets.clear()
        self._last_media_time = float("-inf")


@dataclass(frozen=True)
class MarginPolicy:
    """How the playout margin follows measurement (all in seconds).

    The margin is what the pipeline delay holds beyond the look-ahead and the frame
    period: the time an analysed audio frame may come after the earliest-arrival line of
    ``PlayoutClock`` (network jitter, the receive buffer, the audio front-end's compute) and
    still be shown on time. ``fixed`` pins it (benchmarks that compare builds)."""

    initial_s: float = 0.025  # before ``min_samples`` measurements
    floor_s: float = 0.01
    ceiling_s: float = 0.25
    guard_s: float = 0.005  # added to the measured quantile
    quantile: float = 0.99
    window_s: float = 10.0  # measurements older than this are forgotten
    min_samples: int = 25  # one second of frames
    band_s: float = 0.015  # it falls only when this much above what is needed ...
    hold_s: float = 3.0  # ... for this long (hysteresis: no oscillation)
    fixed_s: float | None = None

    def __post_init__(self) -> None:
        if self.fixed_s is not None and not 0 <= self.fixed_s <= 2.0:
            raise ValueError(f"a fixed margin must be in [0, 2] s, got {self.fixed_s}")
        if not 0 <= self.floor_s <= self.initial_s <= self.ceiling_s:
            raise ValueError(
                "need 0 <= floor <= initial <= ceiling, got "
                f"{self.floor_s}, {self.initial_s}, {self.ceiling_s}"
            )


class PlayoutMargin:
    """The margin from measurement: the ``quantile`` of the lateness of the last
    ``window_s`` of analysed frames, plus a guard, within [floor, ceiling].

    It rises at once (a frame that would come late is worse than a few ms of delay) and
    falls only after it has been more than ``band_s`` above what is needed for ``hold_s``,
    then to what is needed plus a third of the band. Lateness of frame k is when its features
    were ready minus when playout at zero margin is due to show it; negative is early.
    The clock holds playout when the margin rises and skips ahead when it falls, so a late
    frame never makes latency grow beyond the ceiling."""

    def __init__(self, policy: MarginPolicy = MarginPolicy()) -> None:
        self.policy = policy
        self._samples: deque[tuple[float, float]] = deque()  # (now, lateness)
        self._value = policy.initial_s if policy.fixed_s is None else policy.fixed_s
        self._excess_since: float | None = None

    @property
    def value_s(self) -> float:
        return self._value

    @property
    def adaptive(self) -> bool:
        return self.policy.fixed_s is None

    def lateness_quantile(self) -> float | None:
        """The measured quantile of the window, seconds; None before ``min_samples``."""
        if len(self._samples) < self.policy.min_samples:
            return None
        return float(np.quantile([s for _, s in self._samples], self.policy.quantile))

    def observe(self, lateness_s: float, now: float) -> float:
        """One analysed frame's lateness at our time ``now``; returns the margin."""
        p = self.policy
        self._samples.append((now, lateness_s))
        while self._samples and now - self._samples[0][0] > p.window_s:
            self._samples.popleft()
        if p.fixed_s is not None:
            return self._value
        measured = self.lateness_quantile()
        if measured is None:
            needed = max(self._value, lateness_s + p.guard_s)  # only ever up, early on
        else:
            needed = measured + p.guard_s
        needed = min(max(needed, p.floor_s), p.ceiling_s)
        if needed > self._value:
            self._value, self._excess_since = needed, None
        elif measured is not None and self._value - needed > p.band_s:
            if self._excess_since is None:
                self._excess_since = now
            elif now - self._excess_since >= p.hold_s:
                self._value = min(self._value, needed + p.band_s / 3)
                self._excess_since = None
        else:
            self._excess_since = None
        return self._value

    def reset(self) -> None:
        """A new epoch: measurements start again from the current margin."""
        self._samples.clear()
        self._excess_since = None
