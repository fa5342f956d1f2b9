"""``evp bench live``: what the avatar adds to a call, measured end to end over WebRTC.

    evp bench live --spawn --sessions 2 --seconds 30 --json live.json --plot live.png
    evp bench live --url https://avatar.example --sessions 8 --ramp --json ramp.json

N aiortc clients each stream speech bursts (server.bench.analysis) to the server as a
microphone and receive its video and audio. Every received frame's arrival time, its
frame stamp (which audio frame it shows; the session is opened with ``"bench": true``)
and the avatar's face crop are kept; afterwards the face is tracked in every crop, and
the report gives per session and overall: received fps, dropped frames, end-to-end
latency from each burst's first sample to the frame whose mouth starts to move (and the
same from the frame stamps, as a cross-check), the A/V offset of the returned stream,
the server's per-stage timings, CPU and memory (from its /metrics).

``--ramp`` adds one session every ``--seconds`` until a session's fps falls below
``--min-fps`` (24) or the stamped p95 latency exceeds ``--latency-limit-ms``, and reports the most sessions
that held. Every loop is bounded in count and time, and every peer, socket and spawned
server is closed on the way out, whatever happened.
"""

import asyncio
import json
import logging
import socket
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import av
import cv2
import numpy as np

from engine.audio.resample import StreamingResampler
from engine.constants import SAMPLE_RATE, VIDEO_FPS, WEBRTC_SAMPLE_RATE
from engine.errors import EngineError
from engine.wav import read_wav
from server.bench.analysis import (
    LEAD_S,
    Bursts,
    burst_signal,
    clean_stamps,
    mouth_lag,
    percentiles_ms,
    sound_onsets,
    stamp_latencies,
    stamp_onsets,
)
from server.bench.client import Peer, ServerRefused, WavMicrophone, fetch_metrics
from server.bench.impairment import Impairment
from server.frame_stamp import read_stamp

logger = logging.getLogger(__name__)

BUNDLED_SPEECH = Path(__file__).resolve().parent / "assets" / "bench-speech.wav"
CROP = 160  # pixels: the (grey) face crop kept per frame for tracking
MIN_FPS = 24.0
MAX_RAMP_SESSIONS = 64
SPAWN_TIMEOUT_S = 120.0


@dataclass
class LiveOptions:
    sessions: int = 1
    seconds: float = 30.0
    url: str | None = None  # None: spawn a server
    ramp: bool = False
    wavs: list[Path] = field(default_factory=list)
    latency_limit_ms: float = 1000.0
    min_fps: float = MIN_FPS  # ramp: a session below this did not hold
    record: Path | None = None  # write the first session's streams here (MP4)
    # How the clients receive: "browser" (server.receive_buffer: in-order packets go at
    # once, video at each frame's last packet) or "aiortc" (its own buffers: audio 80 ms
    # prefetch, video a frame late).
    receive: str = "browser"
    loss: float = 0.0  # of the microphone's packets, on loopback (server.bench.impairment)
    jitter_ms: float = 0.0  # uniform 0..this on each microphone packet
    serve_args: list[str] = field(default_factory=list)  # with --spawn: for evp serve


class BenchSession:
    """One benchmark client and everything it keeps of what it received."""

    def __init__(
        self,
        url: str,
        bursts: Bursts,
        face_box: list[int],
        record: bool = False,
        browser_like: bool = True,
        impairment: Impairment | None = None,
    ) -> None:
        self.bursts = bursts
        self.record = record
        self.pictures: list[np.ndarray] = []  # with record: every received luma plane
        self.microphone = WavMicrophone(*_at_browser_rate(bursts.signal))
        self.peer = Peer(
            url,
            self.microphone,
            video_sink=self._keep,
            browser_like=browser_like,
            impairment=impairment,
        )
        self.face_box = face_box
        self.times: list[float] = []
        self.stamps: list[int | None] = []
        self.crops: list[np.ndarray] = []
        self.error: str | None = None  # the first failure keeping a received frame
        self.session_id: str | None = None
        self.dropped_at: float | None = None  # when the connection failed mid-run
        self._closing = False

        @self.peer.pc.on("connectionstatechange")
        def _state() -> None:
            if self.peer.pc.connectionState in ("failed", "closed") and not self._closing:
                self.dropped_at = time.monotonic()

    def _keep(self, frame, arrival: float) -> None:
        """Per received frame, on the event loop, so kept cheap: its luma plane only (no
        colour conversion), the stamp read from it, the face cropped and shrunk."""
        try:
            self._keep_frame(frame, arrival)
        except Exception as e:  # noqa: BLE001 - reported, and the session keeps receiving
            self.error = self.error or f"cannot use a received frame: {e!r}"

    def _keep_frame(self, frame, arrival: float) -> None:
        plane = frame.planes[0]
        luma = np.frombuffer(plane, np.uint8).reshape(frame.height, plane.line_size)
        luma = luma[:, : frame.width]
        x, y, size = self.face_box
        self.times.append(arrival)
        self.stamps.append(read_stamp(luma))
        self.crops.append(cv2.resize(luma[y : y + size, x : x + size], (CROP, CROP)))
        if self.record:
            self.pictures.append(luma.copy())

    async def start(self) -> None:
        await self.peer.talk(bench=True)
        self.session_id = self.peer.session_id

    async def close(self) -> None:
        self._closing = True
        await self.peer.close()

    def fps(self) -> float:
        """Frames per second over the whole run."""
        times = self.times
        return (len(times) - 1) / (times[-1] - times[0]) if len(times) > 2 else 0.0

    def fps_in(self, start: float, end: float) -> float:
        """Frames received in [start, end) over its length: a late or stalled stream
        counts as the fps it delivered, not as the fps of its good stretch."""
        times = np.array(self.times)
        return float(((times >= start) & (times < end)).sum() / (end - start))


def _at_browser_rate(signal: np.ndarray) -> tuple[np.ndarray, int]:
    """(n,) speech at SAMPLE_RATE -> the same at 48 kHz, as browsers capture, and that rate:
    aiortc's Opus encoder resamples anything else and holds a packet back doing it (20 ms
    that a browser does not add). Advanced by the resampler's delay, so that sample times
    stay those of ``signal``."""
    resampler = StreamingResampler(SAMPLE_RATE, WEBRTC_SAMPLE_RATE)
    delay = round(resampler.delay_seconds * WEBRTC_SAMPLE_RATE)
    tail = np.zeros(round(resampler.delay_seconds * SAMPLE_RATE) + 1, np.float32)
    padded = np.concatenate([signal.astype(np.float32), tail])
    # In 1 s pieces: the resampler's working memory grows with what it is given at once.
    out = np.concatenate(
        [resampler.push(padded[i : i + SAMPLE_RATE]) for i in range(0, padded.size, SAMPLE_RATE)]
    )
    size = round(signal.size * WEBRTC_SAMPLE_RATE / SAMPLE_RATE)
    return out[delay : delay + size], WEBRTC_SAMPLE_RATE


async def run_live(options: LiveOptions) -> dict:
    try:  # bad input is reported before any server is started
        sources = [read_wav(w, SAMPLE_RATE) for w in options.wavs] or [
            read_wav(BUNDLED_SPEECH, SAMPLE_RATE)
        ]
        burst_signal(sources, options.seconds)
    except (ValueError, EngineError) as e:
        return {"error": f"bad input: {e}", "sessions": 0}
    server = _SpawnedServer(options.serve_args) if options.url is None else None
    url = options.url
    sessions: list[BenchSession] = []
    try:
        if server is not None:
            url = await server.start()
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as http:
            face_box = await _face_box(http, url)
            before = await fetch_metrics(http, url)
            started = time.monotonic()
            ramp = await _run_sessions(options, url, sources, face_box, sessions)
            wall = time.monotonic() - started
            after = await fetch_metrics(http, url)
        await asyncio.gather(*(s.close() for s in sessions), return_exceptions=True)
        result = await asyncio.to_thread(_report, options, sessions, before, after, wall)
        if options.record is not None and sessions:
            result["recording"] = await asyncio.to_thread(_record, sessions[0], options.record)
        if options.ramp:
            result["ramp"] = ramp
            result["max_sessions"] = max((s["sessions"] for s in ramp if s["held"]), default=0)
        spawned = " ".join(["spawned: evp serve (--max-sessions auto)", *options.serve_args])
        result["url"] = url if server is None else spawned
        return result
    except ServerRefused as e:
        return {"error": str(e), "sessions": len(sessions)}
    except (aiohttp.ClientError, OSError, asyncio.TimeoutError) as e:
        where = url or "the spawned server"
        return {"error": f"cannot reach the server at {where}: {e!r}", "sessions": len(sessions)}
    finally:
        await asyncio.gather(*(s.close() for s in sessions), return_exceptions=True)
        if server is not None:
            await server.stop()


def _record(session: BenchSession, path: Path) -> dict:
    from server.bench.recording import analyse_recording, write_recording

    try:
        write_recording(session, path)
        return {"path": str(path)} | analyse_recording(path)
    except (OSError, ValueError, IndexError, av.error.FFmpegError) as e:
        return {"path": str(path), "error": f"cannot record the session: {e!r}"}


async def _run_sessions(options, url, sources, face_box, sessions) -> list[dict]:
    """Start the sessions (all at once, or one per step with --ramp); returns ramp steps."""
    seconds = options.seconds
    if not options.ramp:
        for i in range(options.sessions):
            await _add(options, url, sources, face_box, seconds, sessions, seed=i)
        await asyncio.sleep(seconds + 1.0)
        return []
    steps = []
    limit = min(options.sessions if options.sessions > 1 else MAX_RAMP_SESSIONS, MAX_RAMP_SESSIONS)
    while len(sessions) < limit:
        remaining = seconds * (limit - len(sessions))  # this session's audio lasts the ramp
        added = await _add(options, url, sources, face_box, remaining, sessions, len(sessions))
        if not added:
            steps.append({"sessions": len(sessions) + 1, "held": False, "refused": True})
            break
        step_start = time.monotonic()
        await asyncio.sleep(seconds)
        window = (step_start + LEAD_S, time.monotonic())
        fps = [s.fps_in(*window) for s in sessions]
        latency = np.concatenate([_window_latencies(s, *window) for s in sessions] or [[]])
        p95 = percentiles_ms(latency)["p95"]
        held = bool(
            min(fps) >= options.min_fps and p95 is not None and p95 <= options.latency_limit_ms
        )
        steps.append(
            {"sessions": len(sessions), "fps_min": round(min(fps), 2), "latency_p95_ms": p95,
             "held": held}
        )  # fmt: skip
        logger.info("ramp: %s", steps[-1])
        if not held:
            break
    return steps


def _window_latencies(session: BenchSession, start: float, end: float) -> np.ndarray:
    """Stamped latencies of the frames the session received in [start, end)."""
    if session.microphone.started_at is None or not session.times:
        return np.zeros(0)
    times, stamps = np.array(session.times), clean_stamps(session.stamps)
    inside = (times >= start) & (times < end)
    return stamp_latencies(times[inside], stamps[inside], session.microphone.started_at)


async def _add(options, url, sources, face_box, seconds, sessions, seed) -> bool:
    """Start one more session; False if the server refused it (at capacity)."""
    rotated = sources[seed % len(sources) :] + sources[: seed % len(sources)]
    keep = options.record is not None and not sessions  # the first session is recorded
    impairment = Impairment(options.loss, options.jitter_ms / 1000, seed=seed)
    session = BenchSession(
        url,
        burst_signal(rotated, seconds),
        face_box,
        record=keep,
        browser_like=options.receive == "browser",
        impairment=impairment if impairment.active else None,
    )
    try:
        await session.start()
    except ServerRefused as e:
        await session.close()
        if e.status == 503:
            logger.info("the server refused session %d: %s", len(sessions) + 1, e)
            return False
        raise
    sessions.append(session)
    return True


def _report(options, sessions, before, after, wall) -> dict:
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


def _analyse(session: BenchSession, mesh, to_ibug68) -> dict:
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
    if not received.audio or received.audio_started is None:
        return np.zeros(0)
    started = session.peer.received_audio_started
    return started + sound_onsets(session.peer.returned_audio(), received.audio_rate)


def _server_figures(before: dict, after: dict, wall: float) -> dict:
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


def _budget(after: dict, server: dict, latency: dict) -> dict | None:
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


async def _face_box(http: aiohttp.ClientSession, url: str) -> list[int]:
    async with http.get(f"{url}/api/avatars") as response:
        listing = await response.json()
    default = next(a for a in listing["avatars"] if a["name"] == listing["default"])
    return default["face_box"]


class _SpawnedServer:
    """``evp serve`` in a child process on a free port, stopped (never left behind)."""

    def __init__(self, extra_args: list[str]) -> None:
        self._extra_args = extra_args
        self._process: asyncio.subprocess.Process | None = None
        self._log = Path(tempfile.mkdtemp(prefix="evp-bench-")) / "serve.log"

    async def start(self) -> str:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        # The server's own admission (--max-sessions auto) decides where a ramp stops.
        command = [sys.executable, "-m", "server.cli", "serve", "--port", str(port)]
        command += self._extra_args
        log = await asyncio.to_thread(open, self._log, "wb")
        try:  # the child keeps its own handle
            self._process = await asyncio.create_subprocess_exec(
                *command, stdout=log, stderr=asyncio.subprocess.STDOUT
            )
        finally:
            log.close()
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + SPAWN_TIMEOUT_S
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=2)) as http:
            while time.monotonic() < deadline:
                if self._process.returncode is not None:
                    raise OSError(f"evp serve exited: {self._log.read_text()[-2000:]}")
                try:
                    async with http.get(f"{url}/healthz") as r:
                        if r.status == 200:
                            return url
                except (aiohttp.ClientError, asyncio.TimeoutError):
                    pass
                await asyncio.sleep(0.5)
        raise OSError(f"evp serve did not become healthy within {SPAWN_TIMEOUT_S:.0f} s")

    async def stop(self) -> None:
        process = self._process
        if process is not None and process.returncode is None:
            process.terminate()
            try:
                await asyncio.wait_for(process.wait(), 15)
            except asyncio.TimeoutError:
                process.kill()
                await process.wait()
        self._log.unlink(missing_ok=True)
        self._log.parent.rmdir()


def _serve_args(args) -> list[str]:
    """What --spawn passes on to evp serve."""
    out = []
    for flag, value in (
        ("--model", args.model),
        ("--margin-ms", args.margin_ms),
        ("--receive-buffer", args.receive_buffer),
        ("--max-sessions", args.max_sessions),
    ):
        if value is not None:
            out += [flag, str(value)]
    return out


def run(args) -> int:
    options = LiveOptions(
        sessions=args.sessions,
        seconds=args.seconds,
        url=None if args.spawn else args.url,
        ramp=args.ramp,
        wavs=args.wav or [],
        latency_limit_ms=args.latency_limit_ms,
        min_fps=args.min_fps,
        record=args.record,
        receive=args.receive,
        loss=args.loss,
        jitter_ms=args.jitter_ms,
        serve_args=_serve_args(args),
    )
    if options.url is None and not args.spawn:
        print("evp bench live: give --url URL or --spawn", file=sys.stderr)
        return 2
    result = asyncio.run(run_live(options))
    text = json.dumps(result, indent=2)
    print(text)
    try:
        if args.json:
            tmp = args.json.with_name(args.json.name + ".partial")
            tmp.write_text(text + "\n")
            tmp.replace(args.json)
        if args.plot and "error" not in result:
            from server.bench.plot import plot_live

            plot_live(result, args.plot)
    except OSError as e:
        print(f"evp bench live: cannot write the results: {e}", file=sys.stderr)
        return 2
    return 2 if "error" in result else 0
