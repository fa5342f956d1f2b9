"""``evp bench transport``: stream speech through the real WebRTC path and measure it.

Starts the server in this process (or uses ``--url``), connects ``--sessions`` aiortc peers
that each play a WAV file as their microphone in real time, and reports what each peer
received and what the server measured (its stats messages and /metrics), the full model
pipeline included. In-process, the peers share the machine with the server. ``evp bench
live`` (later) adds mouth-onset detection and ramps.
"""

import argparse
import asyncio
import json
import time
from dataclasses import replace
from pathlib import Path

import aiohttp
import numpy as np
from aiohttp import web

from engine.constants import SAMPLE_RATE
from engine.wav import read_wav
from server.app import create_app
from server.bench.client import Peer, WavMicrophone, fetch_metrics, free_local_port, wait_for
from server.settings import ServerSettings


async def bench_transport(
    wav: Path, seconds: float, url: str | None, settings: ServerSettings, sessions: int = 1
) -> dict:
    runner = None
    if url is None:
        settings = replace(settings, port=free_local_port(), max_sessions=max(sessions, 1))
        runner = web.AppRunner(create_app(settings))
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", settings.port).start()
        url = f"http://127.0.0.1:{settings.port}"
    signal = read_wav(wav, SAMPLE_RATE)
    microphones = [WavMicrophone(signal, SAMPLE_RATE, loop=True) for _ in range(sessions)]
    peers = [Peer(url, microphone) for microphone in microphones]
    try:
        asked = time.monotonic()
        for peer in peers:
            await peer.talk()
        answered = time.monotonic()
        await wait_for(lambda: all(p.received.video_times for p in peers), timeout=15)
        first_frame = max(p.received.video_times[0] for p in peers)
        async with aiohttp.ClientSession() as http:
            stats = await asyncio.gather(*(_collect(http, url, p, seconds) for p in peers))
            metrics = await fetch_metrics(http, url)
        per_session = []
        for peer, microphone, collected in zip(peers, microphones, stats, strict=True):
            latencies = [s["latency_ms"] for s in collected if s["latency_ms"] is not None]
            per_session.append(
                {
                    "client_fps": round(peer.fps_over(seconds - 0.5), 2),
                    "server_fps_mean": round(float(np.mean([s["fps"] for s in collected[1:]])), 2),
                    "server_latency_ms_mean": round(float(np.mean(latencies)), 1),
                    "server_latency_ms_max": round(float(np.max(latencies)), 1),
                    "frames_dropped": collected[-1]["frames_dropped"],
                    "frames_late": collected[-1]["frames_late"],
                    "returned_audio_lag_ms": _audio_lag_ms(peer, microphone, signal),
                }
            )
        compute = metrics.get("evp_frame_compute_seconds_sum", 0.0) / max(
            metrics.get("evp_frame_compute_seconds_count", 0.0), 1.0
        )
        batch = metrics.get("evp_inference_batch_sessions_sum", 0.0) / max(
            metrics.get("evp_inference_batch_sessions_count", 0.0), 1.0
        )
        return {
            "sessions": sessions,
            "seconds": seconds,
            "answer_ms": round(1000 * (answered - asked) / sessions, 1),
            "first_frame_ms": round(1000 * (first_frame - asked), 1),
            "client_fps_min": min(s["client_fps"] for s in per_session),
            "frame_sizes": sorted(set().union(*(p.received.video_sizes for p in peers))),
            "pipeline_delay_ms": stats[0][-1]["pipeline_delay_ms"],
            "frame_compute_ms_mean": round(1000 * compute, 1),
            "inference_batch_mean": round(batch, 2),
            "per_session": per_session,
            "note": "latency: a frame's last audio sample arriving -> its video frame published; "
            "returned audio lag = pipeline delay + aiortc audio jitter buffers (80 ms prefetch "
            "on each side) + Opus both ways; compute: asking for a frame -> having it (queue, "
            "batch, I420), over the server's life",
        }
    finally:
        for peer in peers:
            await peer.close()
        if runner is not None:
            await runner.cleanup()


def _audio_lag_ms(peer: Peer, microphone: WavMicrophone, signal: np.ndarray) -> float | None:
    """The returned audio's lag, or None when it no longer follows the input (overload)."""
    try:
        return round(1000 * peer.returned_audio_lag(microphone, signal, SAMPLE_RATE), 1)
    except RuntimeError:
        return None


async def _collect(http: aiohttp.ClientSession, url: str, peer: Peer, seconds: float) -> list:
    """The stats messages of the peer's session over ``seconds``."""
    stats = []
    control = f"{url}/api/sessions/{peer.session_id}/control?token={peer.token}"
    async with http.ws_connect(control) as ws:
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            try:
                message = await ws.receive_json(timeout=left)
            except asyncio.TimeoutError:
                break
            if message["type"] == "stats":
                stats.append(message)
    return stats


def run(args: argparse.Namespace) -> int:
    settings = ServerSettings()
    result = asyncio.run(bench_transport(args.wav, args.seconds, args.url, settings, args.sessions))
    print(json.dumps(result, indent=2))
    return 0
