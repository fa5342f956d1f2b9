"""Conversions between PyAV frames and the engine's arrays, and the return-audio history."""

from fractions import Fraction

import av
import numpy as np

from engine.audio.pcm import float_to_int16, interleaved_to_planar
from engine.constants import VIDEO_CLOCK_RATE

VIDEO_TIME_BASE = Fraction(1, VIDEO_CLOCK_RATE)


def audio_frame_to_planar(frame: av.AudioFrame) -> np.ndarray:
    """Any decoded audio frame -> (channels, n) array in its own sample dtype."""
    array = frame.to_ndarray()
    channels = len(frame.layout.channels)
    if frame.format.is_planar:
        return array.reshape(channels, -1)
    return interleaved_to_planar(array, channels)


def yuv420p_frame(yuv: np.ndarray, pts: int) -> av.VideoFrame:
    """(H * 3 / 2, W) uint8 I420 planes (Y, then U, then V) -> a frame on the 90 kHz clock."""
    frame = av.VideoFrame.from_ndarray(yuv, format="yuv420p")
    frame.pts = pts
    frame.time_base = VIDEO_TIME_BASE
    return frame


def mono_audio_frame(mono: np.ndarray, sample_rate: int, pts: int) -> av.AudioFrame:
    """(n,) float32 in [-1, 1] -> a packed s16 mono frame stamped in samples."""
    frame = av.AudioFrame.from_ndarray(float_to_int16(mono)[None, :], format="s16", layout="mono")
    frame.sample_rate = sample_rate
    frame.pts = pts
    frame.time_base = Fraction(1, sample_rate)
    return frame


class AudioHistory:
    """The last ``seconds`` of a mono stream, addressed by absolute sample index."""

    def __init__(self, sample_rate: int, seconds: float = 3.0) -> None:
        self.sample_rate = sample_rate
        self._capacity = int(sample_rate * seconds)
        self._buffer = np.zeros(self._capacity, np.float32)
        self._end = 0  # absolute index one past the newest sample

    @property
    def end(self) -> int:
        return self._end

    def write(self, start: int, samples: np.ndarray) -> None:
        """Store samples at absolute index ``start`` (gaps before it become silence)."""
        if start > self._end:
            self.write(self._end, np.zeros(min(start - self._end, self._capacity), np.float32))
            self._end = start
        for i, value_start in enumerate(range(start, start + samples.size, self._capacity)):
            chunk = samples[i * self._capacity : (i + 1) * self._capacity]
            index = (value_start + np.arange(chunk.size)) % self._capacity
            self._buffer[index] = chunk
        self._end = max(self._end, start + samples.size)

    def read(self, start: int, count: int) -> np.ndarray:
        """Samples [start, start + count); silence where nothing (or no longer) stored."""
        out = np.zeros(count, np.float32)
        lo = max(start, self._end - self._capacity)
        hi = min(start + count, self._end)
        if hi > lo:
            out[lo - start : hi - start] = self._buffer[np.arange(lo, hi) % self._capacity]
        return out
