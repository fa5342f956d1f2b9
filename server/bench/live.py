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

import argparse
import asyncio
import json
import logging
import socket
import sys
import tempfile
import time
from pathlib import Path

import aiohttp
import av
import numpy as np

from engine.constants import SAMPLE_RATE
from engine.errors import EngineError
from engine.wav import read_wav
from server.bench.analysis import LEAD_S, burst_signal, percentiles_ms
from server.bench.client import ServerRefused, fetch_metrics
from server.bench.impairment import Impairment
from server.bench.live_report import report, window_latencies
from server.bench.live_session import BenchSession, LiveOptions

logger = logging.getLogger(__name__)

BUNDLED_SPEECH = Path(__file__).resolve().parent / "assets" / "bench-speech.wav"
MAX_RAMP_SESSIONS = 64
SPAWN_TIMEOUT_S = 120.0


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
        assert url is not None  # given, or the spawned server's
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as http:
            face_box = await _face_box(http, url)
            before = await fetch_metrics(http, url)
            started = time.monotonic()
            ramp = await _run_sessions(options, url, sources, face_box, sessions)
            wall = time.monotonic() - started
            after = await fetch_metrics(http, url)
        await asyncio.gather(*(s.close() for s in sessions), return_exceptions=True)
        result = await asyncio.to_thread(report, options, sessions, before, after, wall)
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


async def _run_sessions(
    options: LiveOptions,
    url: str,
    sources: list[np.ndarray],
    face_box: list[int],
    sessions: list[BenchSession],
) -> list[dict]:
    """Start the sessions (all at once, or one per step with --ramp); returns ramp steps."""
    seconds = options.seconds
    if not options.ramp:
        for i in range(options.sessions):
            await _add(options, url, sources, face_box, seconds, sessions, seed=i)
        await asyncio.sleep(seconds + 1.0)
        return []
    steps: list[dict] = []
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
        latency = np.concatenate([window_latencies(s, *window) for s in sessions] or [np.zeros(0)])
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


async def _add(
    options: LiveOptions,
    url: str,
    sources: list[np.ndarray],
    face_box: list[int],
    seconds: float,
    sessions: list[BenchSession],
    seed: int,
) -> bool:
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


async def _face_box(http: aiohttp.ClientSession, url: str) -> list[int]:
    async with http.get(f"{url}/api/avatars") as response:
        listing = await response.json()
    default = next(a for a in listing["avatars"] if a["name"] == listing["default"])
    face_box: list[int] = default["face_box"]  # [x, y, size], pixels
    return face_box


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


def _serve_args(args: argparse.Namespace) -> list[str]:
    """What --spawn passes on to evp serve."""
    out: list[str] = []
    for flag, value in (
        ("--model", args.model),
        ("--margin-ms", args.margin_ms),
        ("--receive-buffer", args.receive_buffer),
        ("--max-sessions", args.max_sessions),
    ):
        if value is not None:
            out += [flag, str(value)]
    return out


def run(args: argparse.Namespace) -> int:
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
