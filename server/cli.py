"""The ``evp`` command. Each subcommand parses its options once and passes them down."""

import argparse
import logging
import sys
import time
from pathlib import Path

from engine.avatar.bundle import AvatarLibrary
from engine.errors import AvatarError, EngineError
from engine.evaluation.cli import add_eval_commands
from engine.model.cli import add_landmarks_command
from engine.pipeline.cli import add_render_command
from engine.runtime.backends import BACKENDS
from engine.runtime.landmarks import DEFAULT_MODEL, MODELS
from engine.training.cli import add_train_commands
from server.emotion_cli import add_emotion_command
from server.settings import DEFAULT_AVATARS, DEFAULT_WEB_CLIENT, ServerSettings
from trt_build.cli import add_export_commands


def _serve(args: argparse.Namespace) -> int:
    from aiohttp import web

    from engine.audio.mfcc import WindowSpec
    from engine.playout import MarginPolicy
    from server.app import create_app

    settings = ServerSettings(
        host=args.host,
        port=args.port,
        avatars_dir=args.avatars,
        web_client_dir=DEFAULT_WEB_CLIENT,
        default_avatar=args.avatar,
        max_sessions=args.max_sessions,
        render_threads=args.render_threads,
        max_viewers=args.max_viewers,
        ice_servers=tuple(args.ice_server),
        media_timeout_s=args.media_timeout,
        receive_buffer_packets=args.receive_buffer,
        model=args.model,
        margin=MarginPolicy(fixed_s=None if args.margin_ms is None else args.margin_ms / 1000),
        window=None if args.lookahead_hops is None else WindowSpec(args.lookahead_hops),
        backend=args.backend,
        allowed_origins=tuple(args.allow_origin),
    )
    app = create_app(settings)
    shown_host = "localhost" if args.host in ("127.0.0.1", "0.0.0.0", "::") else args.host

    async def announce(app: web.Application) -> None:
        print(
            f"evp: serving avatar '{args.avatar}' at http://{shown_host}:{args.port}/", flush=True
        )

    app.on_startup.append(announce)
    web.run_app(app, host=args.host, port=args.port, print=None)
    return 0


def _max_sessions(text: str) -> int | None:
    if text == "auto":
        return None
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected 'auto' or a whole number >= 1, got {text!r}")
    return value


def _margin_ms(text: str) -> float | None:
    if text == "auto":
        return None
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0 <= value <= 2000:
        raise argparse.ArgumentTypeError(
            f"expected 'auto' or milliseconds between 0 and 2000, got {text!r}"
        )
    return value


def _depth(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = -1
    if not 0 <= value <= 16:
        raise argparse.ArgumentTypeError(f"expected 0 to 16 packets, got {text!r}")
    return value


def _fraction(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0 <= value < 1:
        raise argparse.ArgumentTypeError(f"expected a fraction in [0, 1), got {text!r}")
    return value


def _jitter_ms(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0 <= value <= 1000:
        raise argparse.ArgumentTypeError(f"expected 0 to 1000 ms, got {text!r}")
    return value


def _at_least(minimum: int):
    """An argparse type: a whole number >= ``minimum``."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            value = minimum - 1
        if value < minimum:
            raise argparse.ArgumentTypeError(f"expected a whole number >= {minimum}, got {text!r}")
        return value

    return parse


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


def _bench_transport(args: argparse.Namespace) -> int:
    from server.bench.transport import run

    return run(args)


def _bench_live(args: argparse.Namespace) -> int:
    from server.bench.live import run

    return run(args)


def _bench_av_sync(args: argparse.Namespace) -> int:
    from server.bench.browser import run

    return run(args)


def _bench_throughput(args: argparse.Namespace) -> int:
    from server.bench.throughput import run

    return run(args)


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


def _data_build(args: argparse.Namespace) -> int:
    import json

    from engine.data.build import BuildConfig, build

    config = BuildConfig(
        sentences=args.sentences,
        voices=args.voices,
        intensities=tuple(args.intensity or (0.5, 1.0)),
        seed=args.seed,
        ravdess=None if args.no_ravdess else str(args.ravdess),
        clips=str(args.clips),
        mead=str(args.mead),
    )
    report = build(config, args.out)
    print(
        json.dumps(
            {k: v for k, v in report.items() if k in ("records", "by_kind", "pairs", "skipped")},
            indent=2,
        )
    )
    print(f"evp: corpus written to {args.out} (report.md, trajectories.png)")
    return 0


def _teacher_error(args: argparse.Namespace) -> int:
    import json

    from engine.targets.teacher import teacher_error

    result = teacher_error(args.clips)
    if not args.per_clip:
        result.pop("per_clip")
    print(json.dumps(result, indent=2))
    return 0


def _avatar_build(args: argparse.Namespace) -> int:
    from engine.avatar.build import BuildOptions, build_avatar

    options = BuildOptions(
        steps=args.steps,
        size=args.size,
        seed=args.seed,
        source_note=args.source_note or "",
        licence=args.licence,
        force=args.force,
        max_seconds=args.max_seconds,
        device=args.device,
    )
    args.avatars.mkdir(parents=True, exist_ok=True)
    path = build_avatar(args.source, args.name, args.avatars, options)
    if not args.no_int8:
        _quantize_or_say_why(AvatarLibrary(args.avatars).get(args.name))
    print(path)
    return 0


def _quantize_or_say_why(avatar) -> dict | None:
    from engine.avatar.quantize import quantize_generator

    try:
        report = quantize_generator(avatar)
    except AvatarError as e:
        print(f"evp avatar: {e}", file=sys.stderr)
        return None
    int8, fp32 = report["int8"], report["fp32"]
    print(
        f"evp avatar: INT8 generator for ONNX Runtime: held-out SSIM {int8['ssim']:.4f} "
        f"(FP32 {fp32['ssim']:.4f}), PSNR {int8['psnr']:.2f} dB (FP32 {fp32['psnr']:.2f})",
        file=sys.stderr,
    )
    return report


def _avatar_quantize(args: argparse.Namespace) -> int:
    import json

    report = _quantize_or_say_why(AvatarLibrary(args.avatars).get(args.name))
    if report is None:
        return 2
    print(json.dumps(report, indent=2))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="evp", description="Live Emotional Video Portraits")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", help="run the WebRTC avatar server")
    serve.add_argument(
        "--host", default="127.0.0.1", help="address to listen on (default %(default)s)"
    )
    serve.add_argument("--port", type=int, default=8080, help="port (default %(default)s)")
    serve.add_argument(
        "--avatars", type=Path, default=DEFAULT_AVATARS, help="directory of avatar bundles"
    )
    serve.add_argument("--avatar", default="default", help="avatar used when an offer names none")
    serve.add_argument(
        "--max-sessions",
        type=_max_sessions,
        default=None,
        metavar="auto|N",
        help="talking sessions at once; more get 503 (default auto: while the measured "
        "headroom keeps every session at 25 fps)",
    )
    serve.add_argument(
        "--render-threads",
        type=_at_least(0),
        default=0,
        help="frames drawn at once (default: one per usable core, at most 8)",
    )
    serve.add_argument("--max-viewers", type=int, default=8, help="viewers per session")
    serve.add_argument(
        "--ice-server",
        action="append",
        default=[],
        metavar="URL",
        help="STUN/TURN server URL for peers outside this host's networks (repeatable)",
    )
    serve.add_argument(
        "--media-timeout", type=float, default=10.0, help="close sessions silent this many seconds"
    )
    serve.add_argument(
        "--margin-ms",
        type=_margin_ms,
        default=None,
        metavar="auto|MS",
        help="playout margin for jitter and compute on top of look-ahead and frame period: "
        "'auto' (default) follows each session's measured lateness (10-250 ms), a number "
        "fixes it",
    )
    serve.add_argument(
        "--receive-buffer",
        type=_depth,
        default=1,
        metavar="PACKETS",
        help="later microphone packets a missing one waits for before it counts as lost "
        "(0-16; in-order packets never wait; default %(default)s, aiortc's own: 4)",
    )
    serve.add_argument(
        "--model",
        default=DEFAULT_MODEL,
        choices=list(MODELS),
        help="the landmark model: "
        + "; ".join(f"{m.name}: {m.summary}" for m in MODELS.values())
        + " (default %(default)s)",
    )
    serve.add_argument(
        "--lookahead-hops",
        type=int,
        help="MFCC look-ahead in 10 ms hops past each video frame (default: the model's, 12)",
    )
    serve.add_argument(
        "--backend",
        default="auto",
        choices=BACKENDS,
        help="where the networks run (default: TensorRT, else PyTorch CUDA, else ONNX Runtime)",
    )
    serve.add_argument(
        "--allow-origin",
        action="append",
        default=[],
        help="extra browser origin for control sockets",
    )
    serve.set_defaults(handler=_serve)

    bench = commands.add_parser("bench", help="benchmarks")
    bench_commands = bench.add_subparsers(dest="bench", required=True)
    frontend = bench_commands.add_parser("frontend", help="per-frame cost of the audio front-end")
    frontend.add_argument("--wav", type=Path, help="speech file (default: 10 s of noise)")
    frontend.add_argument("--repeats", type=int, default=5)
    frontend.set_defaults(handler=_bench_frontend)

    transport = bench_commands.add_parser(
        "transport", help="fps and latency of one aiortc peer streaming speech"
    )
    transport.add_argument(
        "--wav", type=Path, required=True, help="speech to send as the microphone"
    )
    transport.add_argument("--seconds", type=float, default=10.0)
    transport.add_argument("--sessions", type=int, default=1, help="talking peers at once")
    transport.add_argument("--url", help="a running server (default: start one in-process)")
    transport.set_defaults(handler=_bench_transport)

    live = bench_commands.add_parser(
        "live", help="end-to-end latency, fps and capacity through real WebRTC (N clients)"
    )
    target = live.add_mutually_exclusive_group(required=True)
    target.add_argument("--url", help="a running server, local or remote")
    target.add_argument("--spawn", action="store_true", help="start `evp serve` for the run")
    live.add_argument("--sessions", type=int, default=1, help="clients (with --ramp: the most)")
    live.add_argument("--seconds", type=float, default=30.0, help="run (or ramp step) length")
    live.add_argument("--ramp", action="store_true", help="add sessions until one falls short")
    live.add_argument("--latency-limit-ms", type=float, default=1000.0, help="ramp: p95 limit")
    live.add_argument(
        "--min-fps", type=float, default=24.0, help="ramp: the fps every session must keep"
    )
    live.add_argument(
        "--wav", type=Path, action="append", help="speech to send (repeatable; default: bundled)"
    )
    live.add_argument("--json", type=Path, help="also write the results here")
    live.add_argument("--plot", type=Path, help="and draw them (PNG)")
    live.add_argument(
        "--record", type=Path, help="record the first session (MP4) and check it offline"
    )
    live.add_argument(
        "--receive",
        choices=("browser", "aiortc"),
        default="browser",
        help="how the clients receive: as a browser does (default: audio packets handed on "
        "in order at once, video at each frame's last packet) or with aiortc's own buffers "
        "(audio 80 ms prefetch, video one frame late)",
    )
    live.add_argument(
        "--loss", type=_fraction, default=0.0, help="drop this share of microphone packets"
    )
    live.add_argument(
        "--jitter-ms", type=_jitter_ms, default=0.0, help="delay each by uniform 0..this ms"
    )
    spawned = live.add_argument_group("with --spawn, passed to evp serve")
    spawned.add_argument("--model", choices=list(MODELS))
    spawned.add_argument("--margin-ms", type=_margin_ms, metavar="auto|MS")
    spawned.add_argument("--receive-buffer", type=_depth, metavar="PACKETS")
    spawned.add_argument("--max-sessions", help="auto (default) or a number")
    live.set_defaults(handler=_bench_live)

    av_sync = bench_commands.add_parser(
        "av-sync", help="face against voice as headless Chromium shows them (talk and watch)"
    )
    target = av_sync.add_mutually_exclusive_group(required=True)
    target.add_argument("--url", help="a running server, local or remote")
    target.add_argument("--spawn", action="store_true", help="start `evp serve` for the run")
    av_sync.add_argument("--seconds", type=float, default=20.0, help="measured per page")
    av_sync.add_argument("--wav", type=Path, help="speech for the fake microphone")
    av_sync.add_argument("--json", type=Path, help="also write the results here")
    spawned = av_sync.add_argument_group("with --spawn, passed to evp serve")
    spawned.add_argument("--model", choices=list(MODELS))
    spawned.add_argument("--margin-ms", type=_margin_ms, metavar="auto|MS")
    spawned.add_argument("--receive-buffer", type=_depth, metavar="PACKETS")
    av_sync.set_defaults(handler=_bench_av_sync)

    throughput = bench_commands.add_parser(
        "throughput", help="frames a second the server's render path makes (no clock)"
    )
    throughput.add_argument("--sessions", type=_at_least(1), default=4, help="sessions at once")
    throughput.add_argument("--seconds", type=float, default=10.0)
    throughput.add_argument("--wav", type=Path, help="speech to drive it (default: noise)")
    throughput.add_argument("--backend", default="auto", choices=BACKENDS)
    throughput.add_argument(
        "--render-threads", type=_at_least(0), default=0, help="default: one per core, at most 8"
    )
    throughput.set_defaults(handler=_bench_throughput)

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

    data = commands.add_parser("data", help="training and evaluation data")
    data_commands = data.add_subparsers(dest="data", required=True)
    from engine.data.build import SHARED

    corpus = data_commands.add_parser("build", help="build the training corpus (resumable)")
    corpus.add_argument("--out", type=Path, required=True)
    corpus.add_argument("--sentences", type=int, default=40, help="synthetic sentences (1-40)")
    corpus.add_argument("--voices", type=int, default=3, help="espeak-ng voices (1-6)")
    corpus.add_argument(
        "--intensity",
        type=float,
        action="append",
        default=None,
        help="emotion intensities (repeatable; default 0.5 and 1)",
    )
    corpus.add_argument("--seed", type=int, default=0)
    corpus.add_argument("--ravdess", type=Path, default=SHARED / "ravdess")
    corpus.add_argument("--no-ravdess", action="store_true")
    corpus.add_argument(
        "--clips",
        type=Path,
        default=SHARED / "talking",
        help="real talking clips for the viseme teacher",
    )
    corpus.add_argument(
        "--mead", type=Path, default=SHARED / "mead", help="MEAD clips for expression offsets"
    )
    corpus.set_defaults(handler=_data_build, intensity=None)

    teacher = data_commands.add_parser(
        "teacher-error", help="M-LD/M-LVD of the viseme targets against tracked real clips"
    )
    teacher.add_argument(
        "--clips", type=Path, required=True, help="folder of talking clips with audio"
    )
    teacher.add_argument("--per-clip", action="store_true")
    teacher.set_defaults(handler=_teacher_error)

    avatar = commands.add_parser("avatar", help="build avatar bundles")
    avatar_commands = avatar.add_subparsers(dest="avatar", required=True)
    build = avatar_commands.add_parser(
        "build", help="build an avatar from a video (any fps; resampled to 25) or a photo"
    )
    build.add_argument("source", type=Path, help="video file or photo")
    build.add_argument("--name", required=True, help="avatar name: a-z, 0-9, '-', '_'")
    build.add_argument("--avatars", type=Path, default=DEFAULT_AVATARS, help="bundle directory")
    build.add_argument("--steps", type=int, default=1500, help="generator training steps")
    build.add_argument("--size", type=int, default=256, help="generator crop size, pixels")
    build.add_argument("--seed", type=int, default=0)
    build.add_argument(
        "--max-seconds", type=float, default=30.0, help="use at most this much video"
    )
    build.add_argument("--source-note", help="describe the source in the manifest")
    build.add_argument(
        "--licence", default="unspecified: the builder's own material", help="the source's licence"
    )
    build.add_argument("--force", action="store_true", help="replace an avatar of the same name")
    build.add_argument(
        "--device", help="generator training device, e.g. cpu or cuda (default: cuda if available)"
    )
    build.add_argument(
        "--no-int8", action="store_true", help="skip the INT8 generator (engine.avatar.quantize)"
    )
    build.set_defaults(handler=_avatar_build)
    quantize = avatar_commands.add_parser(
        "quantize",
        help="add an INT8 generator for ONNX Runtime, kept only if held-out quality holds",
    )
    quantize.add_argument("name", help="avatar name")
    quantize.add_argument("--avatars", type=Path, default=DEFAULT_AVATARS, help="bundle directory")
    quantize.set_defaults(handler=_avatar_quantize)

    add_train_commands(commands)
    add_eval_commands(commands)
    add_landmarks_command(commands)
    add_render_command(commands)
    add_emotion_command(commands)
    add_export_commands(commands)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    if not args.verbose:
        for noisy in ("aioice", "aiortc"):
            logging.getLogger(noisy).setLevel(logging.WARNING)
    try:
        return args.handler(args)
    except EngineError as e:
        print(f"evp: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
