"""Loss and jitter on a client's outgoing RTP, on loopback, for benchmarks and tests.

``Impairment(loss=0.02, jitter_s=0.03, seed=1).apply(sender)`` makes every RTP packet the
sender's transport sends (not RTCP, not DTLS) get lost with probability ``loss`` or wait a
uniform 0..``jitter_s`` before it leaves, so packets also arrive out of order, as on a
congested link. Local only: it acts inside this process, on what it sends.
"""

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import numpy as np
from aiortc import RTCRtpSender
from aiortc.rtp import is_rtcp


@dataclass
class Impairment:
    loss: float = 0.0
    jitter_s: float = 0.0
    seed: int = 0
    sent: int = 0
    dropped: int = 0
    _pending: set[asyncio.Task] = field(default_factory=set)

    def __post_init__(self) -> None:
        if not 0 <= self.loss < 1 or not 0 <= self.jitter_s <= 1:
            raise ValueError(
                f"loss must be in [0, 1) and jitter in [0, 1] s, got {self.loss}, {self.jitter_s}"
            )
        self._rng = np.random.default_rng(self.seed)

    @property
    def active(self) -> bool:
        return self.loss > 0 or self.jitter_s > 0

    def apply(self, sender: RTCRtpSender) -> None:
        """Impair what ``sender``'s DTLS transport sends from now on (call after addTrack)."""
        transport = sender.transport
        send = transport._send_rtp

        async def impaired(data: bytes) -> None:
            if is_rtcp(data):
                return await send(data)
            self.sent += 1
            if self._rng.random() < self.loss:
                self.dropped += 1
                return None
            delay = float(self._rng.uniform(0, self.jitter_s))
            if delay <= 0:
                return await send(data)
            task = asyncio.get_running_loop().create_task(_later(send, data, delay))
            self._pending.add(task)
            task.add_done_callback(self._pending.discard)
            return None

        transport._send_rtp = impaired  # type: ignore[method-assign]

    async def aclose(self) -> None:
        for task in list(self._pending):
            task.cancel()
        await asyncio.gather(*self._pending, return_exceptions=True)


async def _later(send: Callable[[bytes], Awaitable[None]], data: bytes, delay: float) -> None:
    await asyncio.sleep(delay)
    try:
        await send(data)
    except ConnectionError:
        pass  # closed while the packet waited: it is lost, as it would be on a link
