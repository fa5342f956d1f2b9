"""``evp emotion``: set a live session's emotion from a script, a stream deck or a hotkey.

    evp emotion --url http://localhost:8080 --session ID --token T happy:0.8
    evp emotion ... --blend sad:happy:0.3 --transition-ms 1000
    evp emotion ... auto          (follow the voice)        evp emotion ... flush

It opens the session's control WebSocket (the ``websockets`` client), sends one command,
waits for the server's new state (or its error), prints it as JSON and exits: 0 when
applied, 2 when refused or unreachable, with the server's reason.
"""

import argparse
import asyncio
import json
import sys
from typing import Any
from urllib.parse import urlencode, urlsplit, urlunsplit

from server.control import DEFAULT_TRANSITION_MS, ControlError, parse_command

REPLY_TIMEOUT_S = 5.0


def command_message(what: str, blend: str | None, transition_ms: int) -> dict:
    """The control message for ``NAME[:INTENSITY]``, ``auto``, ``flush`` or --blend."""
    if blend is not None:
        parts = blend.split(":")
        if len(parts) != 3:
            raise ControlError(f"--blend wants FROM:TO:ALPHA, e.g. sad:happy:0.3; got {blend!r}")
        source, target, alpha = parts
        message = {"type": "blend", "from": source, "to": target, "alpha": _number(alpha)}
    elif what == "auto":
        message = {"type": "auto"}
    elif what == "flush":
        return {"type": "flush"}
    else:
        name, _, intensity = what.partition(":")
        message = {"type": "set_emotion", "emotion": name}
        if intensity:
            message["intensity"] = _number(intensity)
    message["transition_ms"] = transition_ms
    parse_command(message)  # the server's own validation, so mistakes fail before connecting
    return message


def _number(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise ControlError(f"{text!r} is not a number in [0, 1]") from None


def control_url(base: str, session: str, token: str) -> str:
    parts = urlsplit(base if "://" in base else f"http://{base}")
    scheme = {"http": "ws", "https": "wss", "ws": "ws", "wss": "wss"}.get(parts.scheme)
    if scheme is None:
        raise ControlError(f"--url must be http(s):// or ws(s)://, got {base!r}")
    path = f"{parts.path.rstrip('/')}/api/sessions/{session}/control"
    return urlunsplit((scheme, parts.netloc, path, urlencode({"token": token}), ""))


async def send_command(url: str, message: dict) -> dict:
    """Send one command; the server's reply: its new state, or {"type": "error", ...}."""
    import websockets

    async with websockets.connect(url, open_timeout=REPLY_TIMEOUT_S) as ws:
        first = json.loads(await asyncio.wait_for(ws.recv(), REPLY_TIMEOUT_S))
        version = first.get("emotion", {}).get("version", -1)
        await ws.send(json.dumps(message))
        while True:
            reply: dict[str, Any] = json.loads(await asyncio.wait_for(ws.recv(), REPLY_TIMEOUT_S))
            if reply.get("type") == "error":
                return reply
            if reply.get("type") == "state" and reply["emotion"]["version"] > version:
                return reply


def _run(args: argparse.Namespace) -> int:
    import websockets

    try:
        message = command_message(args.emotion, args.blend, args.transition_ms)
        url = control_url(args.url, args.session, args.token)
        reply = asyncio.run(send_command(url, message))
    except ControlError as e:
        print(f"evp emotion: {e}", file=sys.stderr)
        return 2
    except websockets.InvalidStatus as e:
        status = e.response.status_code
        reason = {403: "wrong token or origin", 404: "no such session"}.get(status, "refused")
        print(f"evp emotion: the server said {status} ({reason})", file=sys.stderr)
        return 2
    except (OSError, TimeoutError, websockets.WebSocketException) as e:
        print(f"evp emotion: cannot reach {args.url}: {e}", file=sys.stderr)
        return 2
    print(json.dumps(reply))
    if reply.get("type") == "error":
        print(f"evp emotion: the server refused it: {reply['message']}", file=sys.stderr)
        return 2
    return 0


def add_emotion_command(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "emotion",
        help="set a live session's emotion (for scripts and stream decks)",
        description="EMOTION is NAME or NAME:INTENSITY (0..1), 'auto' (follow the voice) or "
        "'flush' (drop queued audio, back to idle); or use --blend FROM:TO:ALPHA.",
    )
    parser.add_argument("--url", default="http://localhost:8080", help="the server")
    parser.add_argument("--session", required=True, help="session id (from the talk page)")
    parser.add_argument("--token", required=True, help="the session's token")
    parser.add_argument("emotion", nargs="?", default="neutral", metavar="EMOTION")
    parser.add_argument("--blend", metavar="FROM:TO:ALPHA")
    parser.add_argument("--transition-ms", type=int, default=DEFAULT_TRANSITION_MS)
    parser.set_defaults(handler=_run)
