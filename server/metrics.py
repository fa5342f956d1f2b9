"""Prometheus metrics of one server instance, in a registry of its own (no globals)."""

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    ProcessCollector,
    generate_latest,
)

from server.capacity import Capacity

_LATENCY_BUCKETS = (0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.4, 0.5, 0.75, 1.0, 2.0)


class ServerMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        ProcessCollector(registry=r)  # process_cpu_seconds_total, process_resident_memory_bytes
        self.sessions = Gauge("evp_sessions", "Talking sessions open now", registry=r)
        self.viewers = Gauge("evp_viewers", "Viewer connections open now", registry=r)
        self.sessions_started = Counter("evp_sessions_started", "Sessions created", registry=r)
        self.sessions_refused = Counter(
            "evp_sessions_refused", "Offers refused at capacity (503)", registry=r
        )
        self.video_frames = Counter("evp_video_frames", "Video frames published", registry=r)
        self.video_frames_dropped = Counter(
            "evp_video_frames_dropped",
            "Video ticks skipped because the server ran late",
            registry=r,
        )
        self.video_frames_late = Counter(
            "evp_video_frames_late", "Ticks whose audio frame was not analysed in time", registry=r
        )
        self.audio_frames = Counter(
            "evp_audio_frames_received", "Audio frames received", registry=r
        )
        self.audio_repaired = Counter(
            "evp_audio_samples_repaired", "Input samples that were NaN/inf or clipped", registry=r
        )
        self.latency = Histogram(
            "evp_frame_latency_seconds",
            "From the arrival of a frame's last audio sample to the video tick that renders it"
            " (its render and encode follow: evp_stage_seconds)",
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.frontend_seconds = Histogram(
            "evp_stage_frontend_seconds",
            "Audio front-end time per received audio frame",
            buckets=(0.0002, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.02),
            registry=r,
        )
        self.render_seconds = Histogram(
            "evp_frame_compute_seconds",
            "From a session asking for its video frame to having it (queueing, batch, I420)",
            buckets=(0.002, 0.005, 0.01, 0.02, 0.03, 0.04, 0.06, 0.08, 0.12, 0.2),
            registry=r,
        )
        self.stage_seconds = Histogram(
            "evp_stage_seconds",
            "Time per stage: landmarks per inference batch (emotion, Ec, LSTM steps of all its "
            "sessions), render per session's frame (alignment, guidance, generator, "
            "compositing, I420), encode per frame (H.264, shared by its receivers)",
            ["stage"],
            buckets=(0.001, 0.002, 0.005, 0.01, 0.02, 0.03, 0.04, 0.06, 0.08, 0.12),
            registry=r,
        )
        self.batch_sessions = Histogram(
            "evp_inference_batch_sessions",
            "Sessions per inference batch",
            buckets=(1, 2, 3, 4, 6, 8, 16, 32, 64),
            registry=r,
        )
        self.inference_queue = Gauge(
            "evp_inference_queue", "Frame requests waiting for the inference worker", registry=r
        )
        self.capacity_sessions = Gauge(
            "evp_capacity_sessions",
            "Sessions the measured headroom keeps at full rate (server.capacity)",
            registry=r,
        )
        self.load = Gauge(
            "evp_load",
            "Load of each resource by the sessions now, a fraction of it: pool (render "
            "threads), cpu (the cores this process may use), serial (one session's clock)",
            ["resource"],
            registry=r,
        )
        self.output_fps = Gauge(
            "evp_output_fps", "Frames per second every session is served at now", registry=r
        )
        self.degraded = Gauge(
            "evp_degraded", "1 while every session is served below full rate", registry=r
        )
        self.degradations = Counter(
            "evp_degradations", "Times the server lowered every session's frame rate", registry=r
        )
        # Per session (labels removed when it closes; at most max_sessions of each).
        self.session_fps = Gauge(
            "evp_session_fps", "Video frames per second published", ["session"], registry=r
        )
        self.session_dropped = Gauge(
            "evp_session_frames_dropped", "Video ticks skipped so far", ["session"], registry=r
        )
        self.session_late = Gauge(
            "evp_session_frames_late", "Ticks without a fresh audio frame so far", ["session"],
            registry=r,
        )  # fmt: skip
        self.session_latency = Gauge(
            "evp_session_latency_seconds",
            "Mean audio-arrival-to-publication latency over the last stats interval",
            ["session"],
            registry=r,
        )
        self.session_queue = Gauge(
            "evp_session_queue_seconds", "Analysed audio waiting for playout", ["session"],
            registry=r,
        )  # fmt: skip
        self.lookahead = Gauge(
            "evp_lookahead_seconds", "Audio the landmark model needs past each frame", registry=r
        )
        self.session_delay = Gauge(
            "evp_session_pipeline_delay_seconds",
            "Look-ahead + frame period + resampler + margin: how long the server holds audio",
            ["session"],
            registry=r,
        )
        self.session_margin = Gauge(
            "evp_session_margin_seconds",
            "Playout margin for jitter and compute, from the session's measured lateness",
            ["session"],
            registry=r,
        )
        self.control_messages = Counter(
            "evp_control_messages", "Control messages applied", ["type"], registry=r
        )
        self.control_errors = Counter("evp_control_errors", "Control messages rejected", registry=r)

    def forget_session(self, session_id: str) -> None:
        for gauge in (
            self.session_fps, self.session_dropped, self.session_late, self.session_latency,
            self.session_queue, self.session_margin, self.session_delay,
        ):  # fmt: skip
            try:
                gauge.remove(session_id)
            except KeyError:
                pass  # closed before its first stats

    def export_capacity(self, capacity: Capacity) -> None:
        self.capacity_sessions.set(capacity.sessions_fit)
        for resource in ("pool", "cpu", "serial"):
            self.load.labels(resource).set(getattr(capacity.load, resource))
        self.output_fps.set(capacity.fps)
        self.degraded.set(1 if capacity.rung > 0 else 0)

    def exposition(self) -> bytes:
        return generate_latest(self.registry)
