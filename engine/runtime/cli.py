"""The benchmark commands of the engine alone: ``evp bench frontend|generator|engine``."""

import argparse
import time
from pathlib import Path

from engine.avatar.bundle import DEFAULT_AVATARS
from engine.runtime.backends import BACKENDS


def _bench_frontend(args: argparse.Namespace) -> int:
    import json

    import numpy as np

    from engine.audio.frontend import AudioFrontEnd
    from engine.audio.pcm import to_mono_float32
    from engine.constants import SAMPLE_RATE, SAMPLES_PER_VIDEO_FRAME, WEBRTC_SAMPLE_RATE
    from engine.wav import read_wav

    if args.wav:
        signal = read_wav(args.wav, SAMPLE_RATE)
    else:
        signal = np.random.default_rng(0).standard_normal(SAMPLE_RATE * 10).astype(np.float32) * 0.1
    # Feed it as WebRTC would: 48 kHz stereo int16 in 20 ms frames.
    stereo48 = np.repeat(np.repeat(signal, 3)[None, :], 2, axis=0)
    pcm = np.clip(stereo48 * 32767, -32768, 32767).astype(np.int16)
    chunk = 960
    costs = []
    for _ in range(args.repeats):
        frontend = AudioFrontEnd(WEBRTC_SAMPLE_RATE)
        frames = 0
        started = time.perf_counter()
        for start in range(0, pcm.shape[1], chunk):
            mono, _ = to_mono_float32(pcm[:, start : start + chunk])
            frames += len(frontend.push_input(mono))
        costs.append((time.perf_counter() - started) / frames)
    per_frame_ms = 1000 * float(np.median(costs))
    result = {
        "audio_seconds": round(signal.size / SAMPLE_RATE, 2),
        "video_frames": frames,
        "per_frame_ms_median": round(per_frame_ms, 4),
        "per_frame_ms_best": round(1000 * min(costs), 4),
        "realtime_factor": round(1000 * SAMPLES_PER_VIDEO_FRAME / SAMPLE_RATE / per_frame_ms, 1),
        "input": "48 kHz stereo int16, 20 ms frames (downmix + resample + VAD + MFCC windows + prosody)",
    }
    print(json.dumps(result, indent=2))
    return 0


def _bench_generator(args: argparse.Namespace) -> int:
    import json

    from engine.avatar.benchmark import bench_generator
    from engine.avatar.bundle import AvatarLibrary

    avatar = AvatarLibrary(args.avatars).get(args.avatar)
    print(json.dumps(bench_generator(avatar, args.frames, args.threads), indent=2))
    return 0


def _bench_engine(args: argparse.Namespace) -> int:
    import json

    from engine.avatar.bundle import AvatarLibrary
    from engine.constants import SAMPLE_RATE
    from engine.runtime.bench import bench_engine, plot_engine
    from engine.wav import read_wav

    avatar = AvatarLibrary(args.avatars).get(args.avatar)
    audio = read_wav(args.wav, SAMPLE_RATE)
    result = bench_engine(audio, avatar, args.backend, args.seconds)
    if args.plot:
        plot_engine(result, args.plot)
    print(json.dumps(result, indent=2))
    return 0


def add_bench_commands(bench_commands: argparse._SubParsersAction) -> None:
    """Register under ``evp bench`` (the entry point's shared group)."""
    frontend = bench_commands.add_parser("frontend", help="per-frame cost of the audio front-end")
    frontend.add_argument("--wav", type=Path, help="speech file (default: 10 s of noise)")
    frontend.add_argument("--repeats", type=int, default=5)
    frontend.set_defaults(handler=_bench_frontend)

    generator = bench_commands.add_parser(
        "generator", help="per-frame cost of an avatar's face rendering (ONNX Runtime, CPU)"
    )
    generator.add_argument("--avatar", default="default")
    generator.add_argument("--avatars", type=Path, default=DEFAULT_AVATARS)
    generator.add_argument("--frames", type=int, default=200)
    generator.add_argument(
        "--threads", type=int, help="ONNX Runtime threads (default: cores, max 4)"
    )
    generator.set_defaults(handler=_bench_generator)

    engine = bench_commands.add_parser(
        "engine", help="per-stage cost of the audio-to-portrait chain, and batch throughput"
    )
    engine.add_argument("--wav", type=Path, required=True, help="speech to drive it")
    engine.add_argument("--avatar", default="default")
    engine.add_argument("--avatars", type=Path, default=DEFAULT_AVATARS)
    engine.add_argument("--backend", default="auto", choices=BACKENDS)
    engine.add_argument("--seconds", type=float, default=10.0)
    engine.add_argument("--json", action="store_true", help="(the output is always JSON)")
    engine.add_argument("--plot", type=Path, help="also draw stages and throughput as a PNG")
    engine.set_defaults(handler=_bench_engine)
