"""The control WebSocket of one session: validated commands in, state and stats out.

Each socket has a bounded outbox drained by its own writer task, so a client that stops
reading loses its oldest messages instead of stalling the session or other sockets.
"""

import asyncio
import json
import logging
import time

from aiohttp import WSMsgType, web

from server.control import ControlError, parse_command
from server.metrics import ServerMetrics
from server.session import Session

logger = logging.getLogger(__name__)

OUTBOX_SIZE = 32


class TokenBucket:
    """``rate`` events per second on average, bursts of up to ``burst``."""

    def __init__(self, rate: float, burst: float) -> None:
        self.rate, self.burst = rate, burst
        self._tokens = burst
        self._last = time.monotonic()

    def take(self) -> bool:
        now = time.monotonic()
        self._tokens = min(self.burst, self._tokens + (now - self._last) * self.rate)
        self._last = now
        if self._tokens >= 1:
            self._tokens -= 1
            return True
        return False


class ControlChannel:
    def __init__(self, ws: web.WebSocketResponse) -> None:
        self._ws = ws
        self._outbox: asyncio.Queue[dict | None] = asyncio.Queue(OUTBOX_SIZE)

    def send(self, message: dict) -> None:
        """Queue a message; never blocks. The oldest queued message goes if full."""
        if self._outbox.full():
            self._outbox.get_nowait()
        self._outbox.put_nowait(message)

    async def write_loop(self) -> None:
        while (message := await self._outbox.get()) is not None:
            await self._ws.send_str(json.dumps(message))

    async def close(self, reason: str) -> None:
        await self._ws.close(code=1001, message=reason[:120].encode())


async def serve_control_socket(
    request: web.Request, session: Session, metrics: ServerMetrics, rate: float, max_bytes: int
) -> web.WebSocketResponse:
    ws = web.WebSocketResponse(heartbeat=20.0, max_msg_size=max_bytes)
    await ws.prepare(request)
    channel = ControlChannel(ws)
    writer = asyncio.get_running_loop().create_task(
        channel.write_loop(), name=f"session {session.id}:control-writer"
    )
    session.add_control_channel(channel)
    bucket = TokenBucket(rate, 2 * rate)
    channel.send(session.state_message())
    try:
        async for message in ws:
            if message.type == WSMsgType.ERROR:
                logger.info("control socket of %s: %s", session.id, ws.exception())
                break
            if message.type != WSMsgType.TEXT:
                reply_error(channel, metrics, "control messages are JSON text frames")
                continue
            if not bucket.take():
                reply_error(
                    channel, metrics, f"rate limit: at most {rate:g} messages/s; message ignored"
                )
                continue
            try:
                command = parse_command(json.loads(message.data))
                session.apply(command)
            except json.JSONDecodeError as e:
                reply_error(channel, metrics, f"not valid JSON: {e}")
                continue
            except RecursionError:
                reply_error(channel, metrics, "JSON nested too deeply for a control message")
                continue
            except ControlError as e:
                reply_error(channel, metrics, str(e))
                continue
            metrics.control_messages.labels(type=type(command).__name__).inc()
    finally:
        session.remove_control_channel(channel)
        writer.cancel()
        await asyncio.gather(writer, return_exceptions=True)
    return ws


def reply_error(channel: ControlChannel, metrics: ServerMetrics, text: str) -> None:
    metrics.control_errors.inc()
    channel.send({"type": "error", "message": text})
