"""``evp bench throughput``: how many frames a second the server's render path makes.

    evp bench throughput --sessions 4 --seconds 10            # all usable cores
    taskset -c 0 evp bench throughput --sessions 4            # one core

Runs ``--sessions`` sessions of the default avatar through the server's own inference
worker (engine.pipeline.portrait behind server.inference: landmark steps batched on one
thread, renders on the render pool) and its H.264 encoders on the encode pool, exactly as
``evp serve`` sizes them (one thread per usable core, so ``taskset`` limits both), but
with no clock: each session asks for its next frame as soon as it has encoded the last.
The frames per second it sustains, over 25, is how many sessions the compute alone could
serve at full rate; WebRTC, audio and the clients come on top (``evp bench live``).
"""

import argparse
import asyncio
import os
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from engine.audio.frontend import AudioFrontEnd, FrameFeatures, FrontEndOptions
from engine.avatar.bundle import AvatarLibrary
from engine.constants import PTS_PER_VIDEO_FRAME, SAMPLE_RATE, VIDEO_FPS
from engine.emotion_state import EmotionState
from engine.pipeline.h264 import H264Stream, to_i420
from engine.pipeline.portrait import PortraitEngine, PortraitFrame
from engine.runtime.bench import percentiles_ms
from server.inference import InferenceWorker
from server.metrics import ServerMetrics
from server.settings import ServerSettings

WARMUP_S = 1.0


async def bench_throughput(
    audio: np.ndarray, settings: ServerSettings, sessions: int, seconds: float
) -> dict:
    threads = settings.render_pool_size()
    landmarks = ThreadPoolExecutor(1, thread_name_prefix="evp-worker")
    renders = ThreadPoolExecutor(threads, thread_name_prefix="evp-render")
    encodes = ThreadPoolExecutor(threads, thread_name_prefix="evp-encode")
    loop = asyncio.get_running_loop()
    engine = await loop.run_in_executor(landmarks, PortraitEngine.load, settings.backend)
    avatar = AvatarLibrary(settings.avatars_dir).get(settings.default_avatar)
    await loop.run_in_executor(landmarks, engine.renderer, avatar)
    frontend = AudioFrontEnd(options=FrontEndOptions(window=engine.window))
    records = frontend.push(audio) + frontend.finish()
    worker = InferenceWorker(engine, landmarks, renders, ServerMetrics())
    worker.start()
    portraits = [
        await worker.call(engine.open, f"s{i}", avatar, EmotionState(mode="auto"))
        for i in range(sessions)
    ]
    measured: list[list[float]] = [[] for _ in range(sessions)]  # after the warm-up
    made = [0] * sessions  # every frame, for the CPU per frame
    start = loop.time()
    end = start + WARMUP_S + seconds

    async def serve(i: int) -> None:
        encoder = H264Stream(*avatar.size)
        tick = i * 7  # sessions at different places in the loop and the speech
        while (now := loop.time()) < end:
            steps: list[FrameFeatures] = [records[tick % len(records)]]
            i420 = await worker.render(portraits[i], steps, tick, _i420)
            await loop.run_in_executor(encodes, encoder.encode, i420, tick * PTS_PER_VIDEO_FRAME)
            if now >= start + WARMUP_S:
                measured[i].append(loop.time() - now)
            made[i] += 1
            tick += 1

    cpu = time.process_time()
    try:
        await asyncio.gather(*(serve(i) for i in range(sessions)))
    finally:
        for portrait in portraits:
            await worker.call(portrait.close)
        await worker.aclose()
        for executor in (landmarks, renders, encodes):
            executor.shutdown(wait=True)
    cpu = time.process_time() - cpu
    frames = sum(len(m) for m in measured)
    fps = frames / seconds
    return {
        "sessions": sessions,
        "cores": len(os.sched_getaffinity(0)),
        "render_threads": threads,
        "backend": {
            "landmarks": engine.runtime.name,
            "generator": engine.renderer(avatar).generator.name,
        },
        "frames": frames,
        "fps": round(fps, 1),
        "sessions_at_25_fps": round(fps / VIDEO_FPS, 2),
        "per_session_fps": [round(len(m) / seconds, 1) for m in measured],
        "frame_ms": percentiles_ms([s for m in measured for s in m]),
        "cpu_ms_per_frame": round(1000 * cpu / max(sum(made), 1), 2),
        "note": "no clock: each session asks for its next frame once the last is encoded; "
        "frame_ms is one session's ask -> encoded",
    }


def _i420(frame: PortraitFrame) -> np.ndarray:
    return to_i420(frame.image)


def run(args: argparse.Namespace) -> int:
    import json

    from engine.wav import read_wav

    settings = ServerSettings(render_threads=args.render_threads, backend=args.backend)
    audio = read_wav(args.wav, SAMPLE_RATE) if args.wav else _noise()
    result = asyncio.run(bench_throughput(audio, settings, args.sessions, args.seconds))
    print(json.dumps(result, indent=2))
    return 0


def _noise(seconds: float = 10.0) -> np.ndarray:
    rng = np.random.default_rng(0)
    return (0.1 * rng.standard_normal(int(seconds * SAMPLE_RATE))).astype(np.float32)
