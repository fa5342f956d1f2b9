"""When to play what: map input media time to wall-clock playout time at a fixed delay.

Media time is the sender's own timeline (RTP timestamps of the microphone audio). The
clock estimates the offset between it and our clock as the *earliest* arrival seen over a
sliding window, so network jitter never pushes playout later, while clock drift and
lasting route changes are followed within ``window_s``. Media time ``m`` plays at
``offset + m + delay``. Playout never goes backwards: if the offset grows, playout holds
(frames repeat); if it shrinks, playout jumps ahead (frames drop). Either way the latency
stays at ``delay`` instead of growing.
"""

from collections import deque


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
        """Media time whose playout is due at ``now``; None before any input."""
        if not self._offsets:
            return None
        media = now - self.delay_s - self.offset_s
        self._last_media_time = max(self._last_media_time, media)
        return self._last_media_time

    def reset(self) -> None:
        self._offsets.clear()
        self._last_media_time = float("-inf")
