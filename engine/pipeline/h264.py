"""The live H.264 stream of one session: RGB frames -> I420 -> libx264 packets.

    stream = H264Stream(width, height)
    packets = stream.encode(to_i420(rgb), pts)     # pts on the 90 kHz video clock

Settings follow aiortc's own H.264 encoder (libx264, constrained baseline, level 3.1,
zero latency, 1 Mbit/s) so that aiortc only packetizes the packets and any receiver that
takes H.264 decodes them. Packets cannot be re-encoded for one receiver, so keyframes come
every ``KEYFRAME_INTERVAL_S`` and on request (``request_keyframe``, from any thread), at
most one per ``MIN_FORCED_KEYFRAME_GAP`` frames. ``evp bench engine`` times this object,
so its "encode" stage is what the server sends.
"""

import threading
from fractions import Fraction

import av
import cv2
import numpy as np

from engine.constants import VIDEO_CLOCK_RATE, VIDEO_FPS

BITRATE = 1_000_000  # aiortc's default for its own video encoders
KEYFRAME_INTERVAL_S = 2.0
MIN_FORCED_KEYFRAME_GAP = VIDEO_FPS // 2  # frames: requests closer than 0.5 s share one
# libx264 preset. On the default avatar at 1 Mbit/s: veryfast 5.9 ms a frame, luma PSNR
# 41.6 dB; superfast 3.4 ms, 41.5 dB; ultrafast 2.2 ms but 36.2 dB (no deblocking, fewer
# partitions). docs/decisions.md, "Per-frame cost".
PRESET = "superfast"


def to_i420(rgb: np.ndarray) -> np.ndarray:
    """(H, W, 3) uint8 RGB -> (H * 3 / 2, W) uint8 I420, what the encoders take."""
    return cv2.cvtColor(rgb, cv2.COLOR_RGB2YUV_I420)


class H264Stream:
    def __init__(self, width: int, height: int) -> None:
        codec = av.CodecContext.create("libx264", "w")
        codec.width, codec.height = width, height
        codec.pix_fmt = "yuv420p"
        codec.bit_rate = BITRATE
        codec.framerate = Fraction(VIDEO_FPS, 1)
        codec.time_base = Fraction(1, VIDEO_CLOCK_RATE)
        codec.gop_size = round(KEYFRAME_INTERVAL_S * VIDEO_FPS)
        codec.options = {"level": "31", "tune": "zerolatency", "preset": PRESET, "threads": "1"}
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
