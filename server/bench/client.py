"""An aiortc client of the server: a real-time WAV microphone and a talking or watching peer.

Used by the tests and by ``evp bench``: it speaks the public API exactly as a browser does.
"""

import asyncio
import fractions
import re
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import aiohttp
import av
import numpy as np
from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

from engine.audio.pcm import float_to_int16
from server.bench.impairment import Impairment
from server.media import audio_frame_to_planar
from server.receive_buffer import install_browser_like

AUDIO_PTIME = 0.02
SIGNALLING_TIMEOUT = aiohttp.ClientTimeout(total=30)


class ServerRefused(RuntimeError):
    """The server answered an offer with an error status (400 bad offer, 503 full, ...)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"server refused the offer: HTTP {status}: {message}")
        self.status = status


class WavMicrophone(MediaStreamTrack):
    """Plays a mono signal in real time as 20 ms s16 frames, then silence (or loops)."""

    kind = "audio"

    def __init__(self, signal: np.ndarray, sample_rate: int, loop: bool = False) -> None:
        super().__init__()
        self._pcm = float_to_int16(signal)
        self._rate = sample_rate
        self._looping = loop  # not _loop: pyee's event emitter (the base) keeps its loop there
        self._samples = int(sample_rate * AUDIO_PTIME)
        self._sent = 0
        # time.monotonic() of the stream's first sample, as a microphone would capture it:
        # each 20 ms packet leaves when its last sample has been captured.
        self.started_at: float | None = None

    async def recv(self) -> av.AudioFrame:
        if self.readyState != "live":
            raise MediaStreamError
        if self.started_at is None:
            self.started_at = time.monotonic()
        wait = self.started_at + (self._sent + self._samples) / self._rate - time.monotonic()
        if wait > 0:
            await asyncio.sleep(wait)
        begin = self._sent % self._pcm.size if self._looping else self._sent
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
    keep_video: bool = False  # also keep every frame, (H, W, 3) uint8 RGB
    video_sink: Callable[[av.VideoFrame, float], None] | None = None  # (frame, arrival)
    video_frames: list[np.ndarray] = field(default_factory=list)
    video_times: list[float] = field(default_factory=list)
    video_pts: list[int] = field(default_factory=list)  # RTP timestamps, 90 kHz, mod 2**32
    video_sizes: set[tuple[int, int]] = field(default_factory=set)
    audio: list[np.ndarray] = field(default_factory=list)
    audio_pts: list[int] = field(default_factory=list)  # the sender's timestamp of each frame
    audio_times: list[float] = field(default_factory=list)  # time.monotonic() of each arrival
    audio_rate: int | None = None
    audio_started: float | None = None


async def _consume(track: MediaStreamTrack, received: Received) -> None:
    while True:
        try:
            frame = await track.recv()
        except MediaStreamError:
            return
        if track.kind == "video":
            assert isinstance(frame, av.VideoFrame)  # what aiortc's video decoders yield
            assert frame.pts is not None  # aiortc gives each decoded frame its RTP time
            received.video_times.append(time.monotonic())
            received.video_pts.append(frame.pts)
            received.video_sizes.add((frame.width, frame.height))
            if received.keep_video:
                received.video_frames.append(frame.to_ndarray(format="rgb24"))
            elif received.video_sink is not None:
                received.video_sink(frame, received.video_times[-1])
        else:
            assert isinstance(frame, av.AudioFrame)  # what aiortc's audio decoders yield
            assert frame.pts is not None  # aiortc gives each decoded frame its RTP time
            received.audio_rate = frame.sample_rate
            if received.audio_started is None:
                received.audio_started = time.monotonic()
            received.audio_times.append(time.monotonic())
            received.audio_pts.append(frame.pts)
            received.audio.append(
                audio_frame_to_planar(frame).astype(np.float32).mean(axis=0) / 32768
            )


class Peer:
    """A talking (microphone given) or watching (none) aiortc peer of the server."""

    def __init__(
        self,
        base_url: str,
        microphone: MediaStreamTrack | None,
        keep_video: bool = False,
        video_sink: Callable[[av.VideoFrame, float], None] | None = None,
        browser_like: bool = False,
        impairment: Impairment | None = None,
    ):
        """browser_like: receive as a browser does (server.receive_buffer), not with
        aiortc's buffers (80 ms audio prefetch, video one frame late); impairment: loss
        and jitter on the microphone's packets (server.bench.impairment)."""
        self.base_url = base_url
        self.browser_like = browser_like
        self.impairment = impairment
        self.pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        self.received = Received(keep_video, video_sink)
        self._tasks: list[asyncio.Task] = []
        self.session_id: str | None = None
        self.token: str | None = None
        if microphone is not None:
            sender = self.pc.addTrack(microphone)
            if impairment is not None and impairment.active:
                impairment.apply(sender)
        else:
            self.pc.addTransceiver("audio", direction="recvonly")
        self.pc.addTransceiver("video", direction="recvonly")

        @self.pc.on("track")
        def on_track(track: MediaStreamTrack) -> None:
            self._tasks.append(asyncio.ensure_future(_consume(track, self.received)))

    async def _offer(self) -> dict:
        await self.pc.setLocalDescription(await self.pc.createOffer())
        return {"sdp": self.pc.localDescription.sdp, "type": "offer"}

    async def talk(self, **extra: object) -> dict:
        async with (
            aiohttp.ClientSession(timeout=SIGNALLING_TIMEOUT) as http,
            http.post(f"{self.base_url}/api/offer", json=await self._offer() | extra) as r,
        ):
            body: dict = await r.json()
            if r.status != 200:
                raise ServerRefused(r.status, body.get("error", ""))
        self.session_id, self.token = body["session_id"], body["token"]
        await self._answered(body["sdp"])
        return body

    async def _answered(self, sdp: str) -> None:
        await self.pc.setRemoteDescription(RTCSessionDescription(sdp, "answer"))
        if self.browser_like:
            install_browser_like(self.pc.getTransceivers())

    async def watch(self, session_id: str, token: str) -> dict:
        url = f"{self.base_url}/api/sessions/{session_id}/viewers?token={token}"
        offer = await self._offer()
        async with (
            aiohttp.ClientSession(timeout=SIGNALLING_TIMEOUT) as http,
            http.post(url, json=offer) as r,
        ):
            body: dict = await r.json()
            if r.status != 200:
                raise ServerRefused(r.status, body.get("error", ""))
        await self._answered(body["sdp"])
        return body

    @property
    def received_audio_started(self) -> float:
        """Our time at which the first returned frame's first sample arrived, had it come
        on time: from the earliest-arriving frame (arrival minus its place in the stream),
        since the first frames come in a burst, queued while the connection was set up."""
        r = self.received
        if r.audio_started is None or not r.audio_pts or r.audio_rate is None:
            raise RuntimeError("no audio received yet")
        first = r.audio_pts[0]
        return min(
            t - ((p - first) % 2**32) / r.audio_rate
            for t, p in zip(r.audio_times, r.audio_pts, strict=True)
        )

    def fps_over(self, seconds: float) -> float:
        """Frames per second over the last ``seconds`` of received video."""
        times = self.received.video_times
        end = times[-1]
        window = [t for t in times if t > end - seconds]
        return (len(window) - 1) / (window[-1] - window[0])

    def returned_audio(self) -> np.ndarray:
        """The received audio laid out on the sender's timeline (frame pts), with silence
        where frames were lost, so that late or missing frames do not shift what follows."""
        first = self.received.audio_pts[0]
        end = max(
            p - first + a.size
            for p, a in zip(self.received.audio_pts, self.received.audio, strict=True)
        )
        out = np.zeros(end, np.float32)
        for pts, samples in zip(self.received.audio_pts, self.received.audio, strict=True):
            out[pts - first : pts - first + samples.size] = samples
        return out

    def returned_audio_lag(
        self, microphone: "WavMicrophone", signal: np.ndarray, rate: int, max_lag_s: float = 0.6
    ) -> float:
        """Seconds the returned audio lags the microphone, by envelope correlation on our
        clock. Assumes the returned frames arrived back to back from the first one on."""
        hop = 0.01
        samples = self.returned_audio()
        returned_rate = self.received.audio_rate
        assert returned_rate is not None  # set with the first returned frame
        returned = envelope(samples, returned_rate, hop)
        returned_times = self.received_audio_started + hop * np.arange(returned.size)
        sent = envelope(signal, rate, hop)
        best_lag, best_score = 0.0, -1.0
        for lag in np.arange(0.0, max_lag_s, hop):
            index = np.round((returned_times - lag - microphone.started_at) / hop).astype(int)
            valid = (index >= 0) & (index < sent.size)
            score = np.corrcoef(returned[valid], sent[index[valid]])[0, 1]
            if score > best_score:
                best_lag, best_score = float(lag), float(score)
        if best_score < 0.8:
            raise RuntimeError(f"returned audio does not follow the input (r={best_score:.2f})")
        return best_lag

    async def close(self) -> None:
        if self.impairment is not None:
            await self.impairment.aclose()
        await self.pc.close()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)


_SAMPLE = re.compile(r"^([a-zA-Z_:][\w:]*(?:\{[^}]*\})?) ([-+0-9.eEinfa]+)$")


async def fetch_metrics(http: aiohttp.ClientSession, base_url: str) -> dict[str, float]:
    """The server's Prometheus samples, keyed as written: ``name`` or
    ``name{label="value"}``."""
    async with http.get(f"{base_url}/metrics") as response:
        text = await response.text()
    return {
        match[1]: float(match[2]) for line in text.splitlines() if (match := _SAMPLE.match(line))
    }


def free_local_port() -> int:
    """A TCP port on 127.0.0.1 that is free right now (for in-process servers)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def envelope(samples: np.ndarray, rate: int, hop_s: float = 0.01) -> np.ndarray:
    """RMS of consecutive ``hop_s`` blocks of (n,) samples."""
    hop = int(rate * hop_s)
    n = samples.size // hop
    rms: np.ndarray = np.sqrt(np.mean(samples[: n * hop].reshape(n, hop) ** 2, axis=1))
    return rms


async def wait_for(predicate: Callable[[], object], timeout: float, interval: float = 0.05) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout} s")
        await asyncio.sleep(interval)
