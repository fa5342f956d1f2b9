"""A session's counters and timings between two stats messages, and their export to
/metrics (server.metrics)."""

from collections import deque
from dataclasses import dataclass

import numpy as np

from engine.constants import VIDEO_FPS, VIDEO_PERIOD_S
from server.metrics import ServerMetrics


@dataclass
class Counters:
    frames_sent: int = 0
    frames_dropped: int = 0
    frames_late: int = 0
    audio_frames: int = 0
    repaired_samples: int = 0


class SessionStats:
    """Counters since the session began; latencies since the last ``take_latencies``;
    publication times for the fps of the last seconds."""

    def __init__(self) -> None:
        self.counters = Counters()
        self._latencies: list[float] = []
        self._publish_times: deque[float] = deque(maxlen=2 * VIDEO_FPS)

    def published(self, now: float) -> None:
        self._publish_times.append(now)
        self.counters.frames_sent += 1

    def fps(self, now: float, window_s: float = 1.0) -> float:
        """Frames per second published over the last ``window_s``, from their timestamps."""
        times = [t for t in self._publish_times if t >= now - window_s]
        return (len(times) - 1) / (times[-1] - times[0]) if len(times) > 1 else 0.0

    def record_latency(
        self, frame_index: int, now: float, arrivals: "deque[tuple[float, float]]"
    ) -> float | None:
        """From the arrival of the packet that completed frame ``frame_index``'s own audio
        (arrivals: (media end, arrival)) to ``now``; None if it is no longer known."""
        frame_end = (frame_index + 1) * VIDEO_PERIOD_S
        for media_end, arrival in arrivals:
            if media_end >= frame_end - 1e-6:
                latency = now - arrival
                self._latencies.append(latency)
                return latency
        return None

    def take_mean_latency_ms(self) -> float | None:
        """The mean latency of the frames shown since the last call, ms."""
        latencies, self._latencies = self._latencies, []
        return round(1000 * float(np.mean(latencies)), 1) if latencies else None


def export(metrics: ServerMetrics, session_id: str, stats: dict) -> None:
    """A stats message's figures into the per-session gauges."""
    m, sid = metrics, session_id
    m.session_fps.labels(sid).set(stats["fps"])
    m.session_dropped.labels(sid).set(stats["frames_dropped"])
    m.session_late.labels(sid).set(stats["frames_late"])
    m.session_queue.labels(sid).set(stats["queue_delay_ms"] / 1000)
    m.session_margin.labels(sid).set(stats["margin_ms"] / 1000)
    m.session_delay.labels(sid).set(stats["pipeline_delay_ms"] / 1000)
    if stats["latency_ms"] is not None:
        m.session_latency.labels(sid).set(stats["latency_ms"] / 1000)
