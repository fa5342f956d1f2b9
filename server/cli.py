"""The ``evp`` command: its subcommands, each registered by the package that owns it.

    serve                      here (server/)
    bench frontend|generator|engine             engine/runtime/cli.py
    bench transport|live|av-sync|throughput      server/bench/cli.py
    data                       engine/data/cli.py
    avatar                     engine/avatar/cli.py
    train                      engine/training/cli.py
    eval                       engine/evaluation/cli.py
    landmarks                  engine/model/cli.py
    render                     engine/pipeline/cli.py
    emotion                    server/emotion_cli.py
    export                     trt_build/cli.py

Each parses its options once and passes them down.
"""

import argparse
import logging
import sys
from collections.abc import Callable
from pathlib import Path

from engine.avatar.bundle import DEFAULT_AVATARS
from engine.avatar.cli import add_avatar_commands
from engine.constants import MFCC_WINDOW_FRAMES
from engine.data.cli import add_data_commands
from engine.errors import EngineError
from engine.evaluation.cli import add_eval_commands
from engine.model.cli import add_landmarks_command
from engine.pipeline.cli import add_render_command
from engine.runtime.backends import BACKENDS
from engine.runtime.cli import add_bench_commands as add_engine_bench_commands
from engine.runtime.landmarks import DEFAULT_MODEL, MODELS
from engine.training.cli import add_train_commands
from server.arguments import (
    at_least,
    ice_server,
    in_range,
    margin_ms,
    max_sessions,
    packets,
    port,
    turn_problem,
    whole_between,
)
from server.bench.cli import add_bench_commands as add_server_bench_commands
from server.emotion_cli import add_emotion_command
from server.settings import DEFAULT_WEB_CLIENT, ServerSettings
from trt_build.cli import add_export_commands


def _serve(args: argparse.Namespace) -> int:
    from aiohttp import web

    from engine.audio.mfcc import WindowSpec
    from engine.playout import MarginPolicy
    from server.app import create_app

    if problem := turn_problem(args.ice_server, args.ice_username, args.ice_credential):
        raise EngineError(problem)
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
        ice_username=args.ice_username,
        ice_credential=args.ice_credential,
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


def add_serve_command(commands: argparse._SubParsersAction) -> None:
    serve = commands.add_parser("serve", help="run the WebRTC avatar server")
    serve.add_argument(
        "--host", default="127.0.0.1", help="address to listen on (default %(default)s)"
    )
    serve.add_argument("--port", type=port, default=8080, help="port (default %(default)s)")
    serve.add_argument(
        "--avatars", type=Path, default=DEFAULT_AVATARS, help="directory of avatar bundles"
    )
    serve.add_argument("--avatar", default="default", help="avatar used when an offer names none")
    serve.add_argument(
        "--max-sessions",
        type=max_sessions,
        default=None,
        metavar="auto|N",
        help="talking sessions at once; more get 503 (default auto: while the measured "
        "headroom keeps every session at 25 fps)",
    )
    serve.add_argument(
        "--render-threads",
        type=at_least(0),
        default=0,
        help="frames drawn at once (default: one per usable core, at most 8)",
    )
    serve.add_argument(
        "--max-viewers", type=at_least(0), default=8, help="viewers per session (0: none)"
    )
    serve.add_argument(
        "--ice-server",
        type=ice_server,
        action="append",
        default=[],
        metavar="URL",
        help="STUN/TURN server URL for peers outside this host's networks (repeatable)",
    )
    serve.add_argument("--ice-username", help="TURN username (with --ice-credential)")
    serve.add_argument("--ice-credential", help="TURN password (with --ice-username)")
    serve.add_argument(
        "--media-timeout",
        type=in_range(1, 3600, "seconds"),
        default=10.0,
        help="close sessions silent this many seconds",
    )
    serve.add_argument(
        "--margin-ms",
        type=margin_ms,
        default=None,
        metavar="auto|MS",
        help="playout margin for jitter and compute on top of look-ahead and frame period: "
        "'auto' (default) follows each session's measured lateness (10-250 ms), a number "
        "fixes it",
    )
    serve.add_argument(
        "--receive-buffer",
        type=packets,
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
        type=whole_between(0, MFCC_WINDOW_FRAMES),
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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="evp", description="Live Emotional Video Portraits")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    commands = parser.add_subparsers(dest="command", required=True)
    add_serve_command(commands)
    bench = commands.add_parser("bench", help="benchmarks")
    bench_commands = bench.add_subparsers(dest="bench", required=True)
    add_engine_bench_commands(bench_commands)
    add_server_bench_commands(bench_commands)
    add_data_commands(commands)
    add_avatar_commands(commands)
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
        handler: Callable[[argparse.Namespace], int] = args.handler  # each command sets one
        return handler(args)
    except EngineError as e:
        print(f"evp: {e}", file=sys.stderr)
        return 2
    except OSError as e:  # a path given on the command line that cannot be read or written
        if args.verbose:
            raise
        where = f": {e.filename}" if e.filename else ""
        problem = e.strerror or str(e) or type(e).__name__  # a timeout says nothing itself
        print(f"evp: {problem}{where} (--verbose shows where)", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
