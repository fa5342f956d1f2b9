"""``evp bench live``'s report: the recorded samples of every BenchSession (arrival
times, frame stamps, face crops, the returned voice) and the server's /metrics before and
after, turned into received fps, drops, latency percentiles (ms), mouth lag, A/V offset,
the server's figures and the p50 latency budget. Runs after the clients have closed."""

from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np

from engine.constants import VIDEO_FPS
from server.bench.analysis import (
    clean_stamps,
    mouth_lag,
    percentiles_ms,
    sound_onsets,
    stamp_latencies,
    stamp_onsets,
)
from server.bench.live_session import BenchSession, LiveOptions

if TYPE_CHECKING:
    from engine.face.tracking import FaceMesh


def window_latencies(session: BenchSession, start: float, end: float) -> np.ndarray:
    """Stamped latencies of the frames the session received in [start, end)."""
    if session.microphone.started_at is None or not session.times:
        return np.zeros(0)
    times, stamps = np.array(session.times), clean_stamps(session.stamps)
    inside = (times >= start) & (times < end)
    return stamp_latencies(times[inside], stamps[inside], session.microphone.started_at)


def report(
    options: LiveOptions,
    sessions: list[BenchSession],
    before: dict[str, float],
    after: dict[str, float],
    wall: float,
) -> dict:
    """The run's report (JSON-ready); before, after: the server's /metrics samples
    (server.bench.client.fetch_metrics); wall: the run's seconds."""
    from engine.face.landmarks68 import to_ibug68
    from engine.face.tracking import FaceMesh

    per_session, stamped, bursts, offsets = [], [], [], []
    with FaceMesh(static_images=False) as mesh:
        for session in sessions:
            stats = _analyse(session, mesh, to_ibug68)
            per_session.append(stats.pop("public"))
            stamped.append(stats["stamped"])
            bursts.append(stats["bursts"])
            if stats["av_offset"] is not None:
                offsets.append(stats["av_offset"])
    fps = [s["fps"] for s in per_session] or [0.0]
    lags = [s["mouth_lag_ms"] for s in per_session if s["mouth_lag_ms"] is not None]
    return {
        "sessions": len(sessions),
        "seconds": options.seconds,
        "fps": {"min": round(min(fps), 2), "mean": round(float(np.mean(fps)), 2)},
        "latency_ms": percentiles_ms(np.concatenate(stamped or [np.zeros(0)])),
        "burst_latency_ms": percentiles_ms(np.concatenate(bursts or [np.zeros(0)])),
        "mouth_lag_ms": round(float(np.median(lags)), 1) if lags else None,
        "av_offset_ms": round(1000 * float(np.median(offsets)), 1) if offsets else None,
        "drops": int(sum(s["frames_missing"] for s in per_session)),
        "refused": int(
            after.get("evp_sessions_refused_total", 0) - before.get("evp_sessions_refused_total", 0)
        ),
        "dropped_peers": sum(s["dropped"] for s in per_session),
        "server": (server := _server_figures(before, after, wall)),
        "budget_ms": _budget(
            after, server, percentiles_ms(np.concatenate(stamped or [np.zeros(0)]))
        ),
        "receive": options.receive,
        "impairment": {"loss": options.loss, "jitter_ms": options.jitter_ms},
        "per_session": per_session,
        "method": "latency_ms: every received frame's arrival - the capture time of the "
        "end of the audio frame stamped into its picture (client clock only); "
        "burst_latency_ms: each speech burst's first sample captured -> the first frame "
        "made from it; mouth_lag_ms: lag from the end of an audio frame at which the "
        "tracked mouth best follows the sent envelope (= latency + the model's own "
        "response); av_offset_ms: each burst's first frame's arrival - its returned "
        "voice's arrival (> 0: video late), at the client's receiver; budget_ms: where the "
        "p50 latency goes, the server's parts from its /metrics (means over sessions) and "
        "transport (packetisation, Opus, receive buffers, delivery, decode) the rest",
    }


def _analyse(
    session: BenchSession, mesh: "FaceMesh", to_ibug68: Callable[[np.ndarray], np.ndarray]
) -> dict:
    count = min(len(session.times), len(session.stamps), len(session.crops))
    times, stamps = np.array(session.times[:count]), clean_stamps(session.stamps[:count])
    started = session.microphone.started_at or (times[0] if count else 0.0)
    opening = np.full(count, np.nan)
    for i, crop in enumerate(session.crops[:count]):
        points = mesh.points(np.repeat(crop[:, :, None], 3, axis=2))  # luma as grey RGB
        if points is not None:
            face = to_ibug68(points)[:, :2]
            opening[i] = np.linalg.norm(face[66] - face[62]) / np.linalg.norm(face[45] - face[36])
    lag, r = mouth_lag(times, opening, started, session.bursts.signal)
    sent = started + session.bursts.onsets_s
    bursts = stamp_onsets(times, stamps, session.bursts.onsets_s, started) - sent
    stamped = stamp_latencies(times, stamps, started)
    duration = times[-1] - times[0] if count > 1 else 0.0
    expected = int(duration * VIDEO_FPS) + 1 if count else 0
    voice = _returned_voice_onsets(session)  # arrival of each returned burst's voice
    offsets = [
        first - voice[voice > t0][0]
        for t0, first in zip(sent, bursts + sent, strict=True)
        if np.isfinite(first) and (voice > t0).any()
    ]
    av_offset = float(np.median(offsets)) if offsets else None
    voice_lags = [voice[voice > t0][0] - t0 for t0 in sent if (voice > t0).any()]
    audio_lag = float(np.median(voice_lags)) if voice_lags else None
    public = {
        "session_id": session.session_id,
        "fps": round(session.fps(), 2),
        "frames": count,
        "frames_missing": max(0, expected - count),
        "face_tracked": round(float(np.isfinite(opening).mean()), 3) if count else 0.0,
        "latency_ms": percentiles_ms(stamped),
        "latency_growth_ms": _growth_ms(stamped),
        "av_offset_spread_ms": _spread_ms(offsets),
        "burst_latency_ms": percentiles_ms(bursts),
        "mouth_lag_ms": round(1000 * lag, 1) if r > 0.3 else None,
        "mouth_correlation": round(r, 3),
        "returned_audio_lag_ms": None if audio_lag is None else round(1000 * audio_lag, 1),
        "av_offset_ms": None if av_offset is None else round(1000 * av_offset, 1),
        "dropped": session.dropped_at is not None,
        "error": session.error,
    }
    return {"public": public, "stamped": stamped, "bursts": bursts, "av_offset": av_offset}


def _growth_ms(latencies: np.ndarray) -> float | None:
    """Median latency of the last fifth of the run minus that of the first fifth."""
    fifth = latencies.size // 5
    if fifth < 25:
        return None
    return round(1000 * float(np.median(latencies[-fifth:]) - np.median(latencies[:fifth])), 1)


def _spread_ms(offsets: list[float]) -> list[float] | None:
    """The smallest and largest A/V offset of the run's bursts."""
    return [round(1000 * min(offsets), 1), round(1000 * max(offsets), 1)] if offsets else None


def _returned_voice_onsets(session: BenchSession) -> np.ndarray:
    """Arrival times (client clock) where the returned voice starts after silence."""
    received = session.peer.received
    rate = received.audio_rate  # set with audio_started, by the first audio frame
    if not received.audio or received.audio_started is None or rate is None:
        return np.zeros(0)
    started = session.peer.received_audio_started
    return started + sound_onsets(session.peer.returned_audio(), rate)


def _server_figures(before: dict[str, float], after: dict[str, float], wall: float) -> dict:
    def delta(name: str) -> float:
        return after.get(name, 0.0) - before.get(name, 0.0)

    def mean_ms(name: str, labels: str = "") -> float | None:
        count = delta(f"{name}_count{labels}")
        return round(1000 * delta(f"{name}_sum{labels}") / count, 2) if count else None

    return {
        "cpu_percent": round(100 * delta("process_cpu_seconds_total") / wall, 1) if wall else None,
        "memory_mb": round(after.get("process_resident_memory_bytes", 0.0) / 2**20, 1),
        "frame_compute_ms_mean": mean_ms("evp_frame_compute_seconds"),
        "frame_latency_ms_mean": mean_ms("evp_frame_latency_seconds"),
        "stage_ms_mean": {
            stage: mean_ms("evp_stage_seconds", f'{{stage="{stage}"}}')
            for stage in ("landmarks", "render", "encode")
        },
        "frontend_ms_mean": mean_ms("evp_stage_frontend_seconds"),
        "frames_dropped": int(delta("evp_video_frames_dropped_total")),
        "frames_late": int(delta("evp_video_frames_late_total")),
        "refused": int(delta("evp_sessions_refused_total")),
        # The server's own account of its capacity (server.capacity), at the run's end.
        "degradations": int(delta("evp_degradations_total")),
        "output_fps": after.get("evp_output_fps"),
        "capacity_sessions": after.get("evp_capacity_sessions"),
    }


def _budget(after: dict[str, float], server: dict, latency: dict) -> dict | None:
    """The p50 latency line by line: what the server holds each frame for (look-ahead,
    frame period, resampler, margin), its compute and encode, and the transport (the
    rest: microphone packetisation, Opus, receive buffers on both sides, delivery)."""

    def per_session(name: str) -> float | None:
        values = [v for k, v in after.items() if k.startswith(name + "{")]
        return 1000 * float(np.mean(values)) if values else None

    delay, margin = (
        per_session("evp_session_pipeline_delay_seconds"),
        per_session("evp_session_margin_seconds"),
    )
    lookahead = 1000 * after.get("evp_lookahead_seconds", float("nan"))
    if delay is None or margin is None or latency["p50"] is None:
        return None
    frame = 1000 / VIDEO_FPS
    render = server["frame_compute_ms_mean"] or 0.0
    encode = server["stage_ms_mean"].get("encode") or 0.0
    # Latency counts from the end of an audio frame; the server holds a frame from its
    # first sample, so the pipeline delay's frame period is already behind it.
    lines = {
        "look_ahead": lookahead,
        "resampler": delay - lookahead - frame - margin,
        "margin": margin,
        "compute": render,
        "encode": encode,
    }
    lines["transport"] = latency["p50"] - sum(lines.values())
    return {k: round(v, 1) for k, v in lines.items()} | {
        "total_p50": latency["p50"],
        "pipeline_delay": round(delay, 1),
    }
