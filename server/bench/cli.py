"""The benchmark commands that talk to a server: ``evp bench transport|live|av-sync|throughput``."""

import argparse
from pathlib import Path

from engine.runtime.backends import BACKENDS
from engine.runtime.landmarks import MODELS
from server.arguments import at_least, fraction, margin_ms, max_sessions, milliseconds, packets


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


def _add_server_choice(parser: argparse.ArgumentParser) -> None:
    """--url or --spawn, and what --spawn passes on to evp serve (server.bench.live)."""
    target = parser.add_mutually_exclusive_group(required=True)
    target.add_argument("--url", help="a running server, local or remote")
    target.add_argument("--spawn", action="store_true", help="start `evp serve` for the run")
    spawned = parser.add_argument_group("with --spawn, passed to evp serve")
    spawned.add_argument("--model", choices=list(MODELS))
    spawned.add_argument("--margin-ms", type=margin_ms, metavar="auto|MS")
    spawned.add_argument("--receive-buffer", type=packets, metavar="PACKETS")
    spawned.add_argument("--max-sessions", type=max_sessions, metavar="auto|N")


def add_bench_commands(
    bench_commands: "argparse._SubParsersAction[argparse.ArgumentParser]",
) -> None:
    """Register under ``evp bench`` (the entry point's shared group)."""
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
    _add_server_choice(live)
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
        "--loss", type=fraction, default=0.0, help="drop this share of microphone packets"
    )
    live.add_argument(
        "--jitter-ms", type=milliseconds, default=0.0, help="delay each by uniform 0..this ms"
    )
    live.set_defaults(handler=_bench_live)

    av_sync = bench_commands.add_parser(
        "av-sync", help="face against voice as headless Chromium shows them (talk and watch)"
    )
    _add_server_choice(av_sync)
    av_sync.add_argument("--seconds", type=float, default=20.0, help="measured per page")
    av_sync.add_argument("--wav", type=Path, help="speech for the fake microphone")
    av_sync.add_argument("--json", type=Path, help="also write the results here")
    av_sync.set_defaults(handler=_bench_av_sync)

    throughput = bench_commands.add_parser(
        "throughput", help="frames a second the server's render path makes (no clock)"
    )
    throughput.add_argument("--sessions", type=at_least(1), default=4, help="sessions at once")
    throughput.add_argument("--seconds", type=float, default=10.0)
    throughput.add_argument("--wav", type=Path, help="speech to drive it (default: noise)")
    throughput.add_argument("--backend", default="auto", choices=BACKENDS)
    throughput.add_argument(
        "--render-threads", type=at_least(0), default=0, help="default: one per core, at most 8"
    )
    throughput.set_defaults(handler=_bench_throughput)
