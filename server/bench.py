"""``evp bench transport``: stream speech through the real WebRTC path and measure it.

Starts the server in this process (or uses ``--url``), connects one aiortc peer that plays a
WAV file as its microphone in real time, and reports what the peer received and what the
server measured. This is the transport alone; ``evp bench live`` (later) adds many
sessions, the full model pipeline and mouth-onset detection.
"""

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
from server.client import Peer, WavMicrophone, free_local_port, wait_for
from server.settings import ServerSettings


async def bench_transport(
    wav: Path, seconds: float, url: str | None, settings: ServerSettings
) -> dict:
    runner = None
    if url is None:
        settings = replace(settings, port=free_local_port())
        runner = web.AppRunner(create_app(settings))
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", settings.port).start()
        url = f"http://127.0.0.1:{settings.port}"
    signal = read_wav(wav, SAMPLE_RATE)
    microphone = WavMicrophone(signal, SAMPLE_RATE, loop=True)
    peer = Peer(url, microphone)
    stats: list[dict] = []
    try:
        asked = time.monotonic()
        await peer.talk()
        answered = time.monotonic()
        await wait_for(lambda: peer.received.video_times, timeout=15)
        first_frame = peer.received.video_times[0]
        async with aiohttp.ClientSession() as http:
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
        latencies = [s["latency_ms"] for s in stats if s["latency_ms"] is not None]
        return {
            "seconds": seconds,
            "answer_ms": round(1000 * (answered - asked), 1),
            "first_frame_ms": round(1000 * (first_frame - asked), 1),
            "client_fps": round(peer.fps_over(seconds - 0.5), 2),
            "frame_sizes": sorted(peer.received.video_sizes),
            "server_fps_mean": round(float(np.mean([s["fps"] for s in stats[1:]])), 2),
            "server_latency_ms_mean": round(float(np.mean(latencies)), 1),
            "server_latency_ms_max": round(float(np.max(latencies)), 1),
            "pipeline_delay_ms": stats[-1]["pipeline_delay_ms"],
            "frames_dropped": stats[-1]["frames_dropped"],
            "returned_audio_lag_ms": round(
                1000 * peer.returned_audio_lag(microphone, signal, SAMPLE_RATE), 1
            ),
            "note": "returned audio lag = pipeline delay + aiortc audio jitter buffers "
            "(80 ms prefetch on each side) + Opus both ways",
        }
    finally:
        await peer.close()
        if runner is not None:
            await runner.cleanup()


def run(args) -> int:
    settings = ServerSettings()
    result = asyncio.run(bench_transport(args.wav, args.seconds, args.url, settings))
    print(json.dumps(result, indent=2))
    return 0
