"""Test fakes and clients: a real-time WAV microphone and an aiortc talking/watching peer."""

import asyncio
import fractions
import time
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import numpy as np
from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

from engine.audio.pcm import float_to_int16
from server.media import audio_frame_to_planar

AUDIO_PTIME = 0.02


class WavMicrophone(MediaStreamTrack):
    """Plays a mono signal in real time as 20 ms s16 frames, then silence (or loops)."""

    kind = "audio"

    def __init__(self, signal: np.ndarray, sample_rate: int, loop: bool = False) -> None:
        super().__init__()
        self._pcm = float_to_int16(signal)
        self._rate = sample_rate
        self._loop = loop
        self._samples = int(sample_rate * AUDIO_PTIME)
        self._sent = 0
        self.started_at: float | None = None  # time.monotonic() of the first frame

    async def recv(self):
        import av

        if self.readyState != "live":
            raise MediaStreamError
        if self.started_at is None:
            self.started_at = time.monotonic()
        wait = self.started_at + self._sent / self._rate - time.monotonic()
        if wait > 0:
            await asyncio.sleep(wait)
        begin = self._sent % self._pcm.size if self._loop else self._sent
        chunk = self._pcm[begin : begin + self._samples]
        if chunk.size < self._samples:
            chunk = np.concatenate([chunk, np.zeros(self._samples - chunk.size, np.int16)])
        frame = av.AudioFrame.from_ndarray(chunk[None, :], format="s16", layout="mono")
        frame.sample_rate = self._rate
        frame.pts = self._sent
        frame.time_base = fractions.Fraction(1, self._rate)
        self._sent += self._samples
        return frame


@dataclass
class Received:
    video_times: list[float] = field(default_factory=list)
    video_sizes: set[tuple[int, int]] = field(default_factory=set)
    last_image: np.ndarray | None = None
    audio: list[np.ndarray] = field(default_factory=list)
    audio_rate: int | None = None
    audio_started: float | None = None


async def _consume(track: MediaStreamTrack, received: Received, keep_images: bool) -> None:
    while True:
        try:
            frame = await track.recv()
        except MediaStreamError:
            return
        if track.kind == "video":
            received.video_times.append(time.monotonic())
            received.video_sizes.add((frame.width, frame.height))
            if keep_images:
                received.last_image = frame.to_ndarray(format="rgb24")
        else:
            received.audio_rate = frame.sample_rate
            if received.audio_started is None:
                received.audio_started = time.monotonic()
            received.audio.append(audio_frame_to_planar(frame).astype(np.float32).mean(axis=0) / 32768)


class Peer:
    """A talking (microphone given) or watching (none) aiortc peer of the server."""

    def __init__(self, base_url: str, microphone: MediaStreamTrack | None, keep_images: bool = False):
        self.base_url = base_url
        self.pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        self.received = Received()
        self._keep_images = keep_images
        self._tasks: list[asyncio.Task] = []
        self.session_id: str | None = None
        self.token: str | None = None
        if microphone is not None:
            self.pc.addTrack(microphone)
        else:
            self.pc.addTransceiver("audio", direction="recvonly")
        self.pc.addTransceiver("video", direction="recvonly")

        @self.pc.on("track")
        def on_track(track: MediaStreamTrack) -> None:
            self._tasks.append(asyncio.ensure_future(_consume(track, self.received, self._keep_images)))

    async def _offer(self) -> dict:
        await self.pc.setLocalDescription(await self.pc.createOffer())
        return {"sdp": self.pc.localDescription.sdp, "type": "offer"}

    async def talk(self, **extra) -> dict:
        async with aiohttp.ClientSession() as http:
            async with http.post(f"{self.base_url}/api/offer", json=await self._offer() | extra) as r:
                body = await r.json()
                assert r.status == 200, body
        self.session_id, self.token = body["session_id"], body["token"]
        await self.pc.setRemoteDescription(RTCSessionDescription(body["sdp"], "answer"))
        return body

    async def watch(self, session_id: str, token: str) -> dict:
        url = f"{self.base_url}/api/sessions/{session_id}/viewers?token={token}"
        async with aiohttp.ClientSession() as http:
            async with http.post(url, json=await self._offer()) as r:
                body = await r.json()
                assert r.status == 200, body
        await self.pc.setRemoteDescription(RTCSessionDescription(body["sdp"], "answer"))
        return body

    @property
    def received_audio_started(self) -> float:
        assert self.received.audio_started is not None, "no audio received"
        return self.received.audio_started

    def fps_over(self, seconds: float) -> float:
        """Frames per second over the last ``seconds`` of received video."""
        times = self.received.video_times
        end = times[-1]
        window = [t for t in times if t > end - seconds]
        return (len(window) - 1) / (window[-1] - window[0])

    async def close(self) -> None:
        await self.pc.close()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)


async def wait_for(predicate, timeout: float, interval: float = 0.05) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout} s")
        await asyncio.sleep(interval)
