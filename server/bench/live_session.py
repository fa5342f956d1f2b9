"""What ``evp bench live`` (server.bench.live) runs: its options, and each client
(BenchSession), an aiortc peer that streams speech bursts as a microphone and keeps, per
received frame, its arrival time (monotonic s), frame stamp and a CROP x CROP grey face
crop, for the report (server.bench.live_report)."""

import time
from dataclasses import dataclass, field
from pathlib import Path

import av
import cv2
import numpy as np

from engine.audio.resample import StreamingResampler
from engine.constants import SAMPLE_RATE, WEBRTC_SAMPLE_RATE
from server.bench.analysis import Bursts
from server.bench.client import Peer, WavMicrophone
from server.bench.impairment import Impairment
from server.frame_stamp import read_stamp

CROP = 160  # pixels: the (grey) face crop kept per frame for tracking
MIN_FPS = 24.0


@dataclass
class LiveOptions:
    sessions: int = 1
    seconds: float = 30.0
    url: str | None = None  # None: spawn a server
    ramp: bool = False
    wavs: list[Path] = field(default_factory=list)
    latency_limit_ms: float = 1000.0
    min_fps: float = MIN_FPS  # ramp: a session below this did not hold
    record: Path | None = None  # write the first session's streams here (MP4)
    # How the clients receive: "browser" (server.receive_buffer: in-order packets go at
    # once, video at each frame's last packet) or "aiortc" (its own buffers: audio 80 ms
    # prefetch, video a frame late).
    receive: str = "browser"
    loss: float = 0.0  # of the microphone's packets, on loopback (server.bench.impairment)
    jitter_ms: float = 0.0  # uniform 0..this on each microphone packet
    serve_args: list[str] = field(default_factory=list)  # with --spawn: for evp serve


class BenchSession:
    """One benchmark client and everything it keeps of what it received."""

    def __init__(
        self,
        url: str,
        bursts: Bursts,
        face_box: list[int],
        record: bool = False,
        browser_like: bool = True,
        impairment: Impairment | None = None,
    ) -> None:
        self.bursts = bursts
        self.record = record
        self.pictures: list[np.ndarray] = []  # with record: every received luma plane
        self.microphone = WavMicrophone(*_at_browser_rate(bursts.signal))
        self.peer = Peer(
            url,
            self.microphone,
            video_sink=self._keep,
            browser_like=browser_like,
            impairment=impairment,
        )
        self.face_box = face_box
        self.times: list[float] = []
        self.stamps: list[int | None] = []
        self.crops: list[np.ndarray] = []
        self.error: str | None = None  # the first failure keeping a received frame
        self.session_id: str | None = None
        self.dropped_at: float | None = None  # when the connection failed mid-run
        self._closing = False

        @self.peer.pc.on("connectionstatechange")
        def _state() -> None:
            if self.peer.pc.connectionState in ("failed", "closed") and not self._closing:
                self.dropped_at = time.monotonic()

    def _keep(self, frame: av.VideoFrame, arrival: float) -> None:
        """Per received frame, on the event loop, so kept cheap: its luma plane only (no
        colour conversion), the stamp read from it, the face cropped and shrunk."""
        try:
            self._keep_frame(frame, arrival)
        except Exception as e:  # noqa: BLE001 - reported, and the session keeps receiving
            self.error = self.error or f"cannot use a received frame: {e!r}"

    def _keep_frame(self, frame: av.VideoFrame, arrival: float) -> None:
        plane = frame.planes[0]
        # PyAV's planes are buffers, which its stubs do not declare (av/buffer.pyi).
        luma = np.frombuffer(plane, np.uint8).reshape(frame.height, plane.line_size)  # type: ignore[call-overload]
        luma = luma[:, : frame.width]
        x, y, size = self.face_box
        self.times.append(arrival)
        self.stamps.append(read_stamp(luma))
        self.crops.append(cv2.resize(luma[y : y + size, x : x + size], (CROP, CROP)))
        if self.record:
            self.pictures.append(luma.copy())

    async def start(self) -> None:
        await self.peer.talk(bench=True)
        self.session_id = self.peer.session_id

    async def close(self) -> None:
        self._closing = True
        await self.peer.close()

    def fps(self) -> float:
        """Frames per second over the whole run."""
        times = self.times
        return (len(times) - 1) / (times[-1] - times[0]) if len(times) > 2 else 0.0

    def fps_in(self, start: float, end: float) -> float:
        """Frames received in [start, end) over its length: a late or stalled stream
        counts as the fps it delivered, not as the fps of its good stretch."""
        times = np.array(self.times)
        return float(((times >= start) & (times < end)).sum() / (end - start))


def _at_browser_rate(signal: np.ndarray) -> tuple[np.ndarray, int]:
    """(n,) speech at SAMPLE_RATE -> the same at 48 kHz, as browsers capture, and that rate:
    aiortc's Opus encoder resamples anything else and holds a packet back doing it (20 ms
    that a browser does not add). Advanced by the resampler's delay, so that sample times
    stay those of ``signal``."""
    resampler = StreamingResampler(SAMPLE_RATE, WEBRTC_SAMPLE_RATE)
    delay = round(resampler.delay_seconds * WEBRTC_SAMPLE_RATE)
    tail = np.zeros(round(resampler.delay_seconds * SAMPLE_RATE) + 1, np.float32)
    padded = np.concatenate([signal.astype(np.float32), tail])
    # In 1 s pieces: the resampler's working memory grows with what it is given at once.
    out = np.concatenate(
        [resampler.push(padded[i : i + SAMPLE_RATE]) for i in range(0, padded.size, SAMPLE_RATE)]
    )
    size = round(signal.size * WEBRTC_SAMPLE_RATE / SAMPLE_RATE)
    return out[delay : delay + size], WEBRTC_SAMPLE_RATE
