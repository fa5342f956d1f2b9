"""Fan-out of one session's media to its peer and viewers through bounded queues.

A session produces each frame once, on its own clock, and publishes it as a read-only
array with its timestamp. Each consumer (an aiortc sender) pulls from its own small queue
and gets its own PyAV frame around the shared array: encoders mutate the frames they are
given (picture type, format), so frames are never shared between senders. A consumer that
falls behind loses its oldest frames instead of delaying anyone else or growing latency,
and ``on_overflow`` is told once when it reads again (an encoded stream then needs a
keyframe). Already encoded packets (engine.pipeline.h264, server.video_encoder) are
published the same way and shared as they are.
"""

import asyncio
from collections.abc import Callable
from typing import Any, NamedTuple

import numpy as np
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack
from av.frame import Frame
from av.packet import Packet


class Payload(NamedTuple):
    data: Any  # a read-only array, or an encoded av.Packet
    pts: int


FrameFactory = Callable[[Any, int], Frame | Packet]  # (data, pts) -> what recv() returns


class SubscriberTrack(MediaStreamTrack):
    def __init__(self, broadcast: "Broadcast", max_queue: int) -> None:
        super().__init__()
        self.kind = broadcast.kind
        self._broadcast: Broadcast | None = broadcast
        self._to_frame = broadcast.to_frame
        self._queue: asyncio.Queue[Payload | None] = asyncio.Queue(max_queue)
        self._stalled = False  # frames were dropped since the last recv()

    async def recv(self) -> Frame | Packet:
        if self.readyState != "live":
            raise MediaStreamError
        if self._stalled:  # reading again after losing frames: once, not once per frame
            self._stalled = False
            if self._broadcast is not None and self._broadcast.on_overflow is not None:
                self._broadcast.on_overflow()
        payload = await self._queue.get()
        if payload is None:
            raise MediaStreamError
        return self._to_frame(payload.data, payload.pts)

    def offer(self, payload: Payload | None) -> None:
        if self._queue.full():
            self._queue.get_nowait()  # the oldest frame goes: this consumer fell behind
            self._stalled = True
        self._queue.put_nowait(payload)

    def stop(self) -> None:
        if self._broadcast is not None:
            self._broadcast.unsubscribe(self)
            self._broadcast = None
            self.offer(None)
        super().stop()


class Broadcast:
    """Publishes payloads of one kind to any number of SubscriberTracks."""

    def __init__(
        self,
        kind: str,
        to_frame: FrameFactory,
        max_queue: int,
        on_overflow: Callable[[], None] | None = None,
    ) -> None:
        self.kind = kind
        self.to_frame = to_frame
        self.on_overflow = on_overflow
        self._max_queue = max_queue
        self._subscribers: set[SubscriberTrack] = set()

    def __len__(self) -> int:
        return len(self._subscribers)

    def subscribe(self) -> SubscriberTrack:
        track = SubscriberTrack(self, self._max_queue)
        self._subscribers.add(track)
        return track

    def unsubscribe(self, track: SubscriberTrack) -> None:
        self._subscribers.discard(track)

    def publish(self, data: Any, pts: int) -> None:
        if isinstance(data, np.ndarray):
            data.flags.writeable = False
        payload = Payload(data, pts)
        for track in self._subscribers:
            track.offer(payload)

    def close(self) -> None:
        for track in list(self._subscribers):
            track.stop()
