"""One H.264 encode per session, its packets shared by the peer and every viewer.

aiortc encodes each sender's frames itself, so a session with N viewers would encode every
frame N + 1 times. Receivers that offer H.264 (browsers and aiortc do) are instead given
this encoder's packets, which aiortc only packetizes (``H264Encoder.pack``). Settings
follow aiortc's own H.264 encoder: libx264, constrained baseline, level 3.1, zero latency,
1 Mbit/s. Packets cannot be re-encoded for one receiver, so keyframes come every
``KEYFRAME_INTERVAL_S`` and whenever a receiver joins or loses packets (its queue
overflowed), which is how each one (re)starts decoding.

Encoding runs on the inference worker's thread; ``request_keyframe`` may be called from
the event loop.
"""

import threading
from fractions import Fraction

import av
import numpy as np

from engine.constants import VIDEO_CLOCK_RATE, VIDEO_FPS

BITRATE = 1_000_000  # aiortc's default for its own video encoders
KEYFRAME_INTERVAL_S = 2.0
MIN_FORCED_KEYFRAME_GAP = VIDEO_FPS // 2  # frames: requests closer than 0.5 s share one


def offers_h264(sdp: str) -> bool:
    """Whether the offer's first video m-line takes the H.264 this encoder makes and aiortc
    can answer: packetization-mode 1, (constrained) baseline profile."""
    from aiortc.sdp import SessionDescription

    for media in SessionDescription.parse(sdp).media:
        if media.kind != "video":
            continue
        return any(
            codec.mimeType.lower() == "video/h264"
            and str(codec.parameters.get("packetization-mode", "0")) == "1"
            and str(codec.parameters.get("profile-level-id", "42")).lower().startswith("42")
            for codec in media.rtp.codecs
        )
    return False


def h264_preferences() -> list:
    """aiortc's H.264 codecs (and RTX), for ``RTCRtpTransceiver.setCodecPreferences``."""
    from aiortc import RTCRtpSender

    codecs = RTCRtpSender.getCapabilities("video").codecs
    return [c for c in codecs if c.mimeType.lower() in ("video/h264", "video/rtx")]


class SharedH264:
    def __init__(self, width: int, height: int) -> None:
        codec = av.CodecContext.create("libx264", "w")
        codec.width, codec.height = width, height
        codec.pix_fmt = "yuv420p"
        codec.bit_rate = BITRATE
        codec.framerate = Fraction(VIDEO_FPS, 1)
        codec.time_base = Fraction(1, VIDEO_CLOCK_RATE)
        codec.gop_size = round(KEYFRAME_INTERVAL_S * VIDEO_FPS)
        codec.options = {"level": "31", "tune": "zerolatency", "preset": "veryfast", "threads": "1"}
        codec.profile = "Baseline"
        self._codec = codec
        self._lock = threading.Lock()  # requests come from the event loop
        self._keyframe = True
        self._since_forced = MIN_FORCED_KEYFRAME_GAP
        self.frames_encoded = 0
        self.keyframes_forced = 0

    def request_keyframe(self) -> None:
        """Make a keyframe soon: at once, or 0.5 s after the last forced one (so many
        requests, e.g. every receiver joining or reporting loss, cost one keyframe)."""
        with self._lock:
            self._keyframe = True

    def encode(self, i420: np.ndarray, pts: int) -> list[av.Packet]:
        """(H * 3 / 2, W) I420 stamped ``pts`` (90 kHz) -> its packets (usually one)."""
        frame = av.VideoFrame.from_ndarray(i420, format="yuv420p")
        frame.pts, frame.time_base = pts, self._codec.time_base
        self._since_forced += 1
        with self._lock:
            keyframe = self._keyframe and self._since_forced >= MIN_FORCED_KEYFRAME_GAP
            if keyframe:
                self._keyframe = False
        if keyframe:
            self._since_forced = 0
            self.keyframes_forced += 1
        frame.pict_type = (
            av.video.frame.PictureType.I if keyframe else av.video.frame.PictureType.NONE
        )
        packets = self._codec.encode(frame)
        for packet in packets:
            packet.time_base = self._codec.time_base
        self.frames_encoded += 1
        return packets
