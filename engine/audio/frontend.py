"""The streaming audio front-end: PCM in, one analysed record per 40 ms video frame out.

    PCM (any rate, any layout) -> mono float32 -> 16 kHz -> { MFCC windows, hop prosody, level, VAD }

For every video frame k (16 kHz samples [640k, 640k + 640)) it emits a FrameFeatures once
that frame's look-ahead has arrived. ``finish()`` flushes the end of a stream, so a whole
file pushed in any chunking gives exactly the records of ``analyse_offline``.
"""

from dataclasses import dataclass, field

import numpy as np

from engine.audio.mfcc import (
    StreamingMfcc,
    WindowSpec,
    compute_mfcc,
    n_video_frames,
    video_frame_windows,
)
from engine.audio.prosody import SILENCE_HOP, HopFeatures
from engine.audio.resample import StreamingResampler
from engine.audio.vad import VadOptions, VoiceActivityDetector
from engine.constants import (
    MFCC_HOPS_PER_VIDEO_FRAME,
    MFCC_N_COEFFS,
    MFCC_WINDOW_FRAMES,
    SAMPLE_RATE,
    SAMPLES_PER_VIDEO_FRAME,
    VAD_FRAME_SAMPLES,
)

SILENCE_DB = -120.0  # level reported for digital silence
_VAD_BLOCKS_PER_FRAME = SAMPLES_PER_VIDEO_FRAME // VAD_FRAME_SAMPLES  # 2


@dataclass(frozen=True)
class FrameFeatures:
    """Everything the engine knows about one 40 ms video frame of input audio."""

    index: int
    """Video frame k: 16 kHz samples [640k, 640k + 640) of the stream."""
    mfcc: np.ndarray = field(repr=False)
    """(28, 12) float32 MFCC window (see engine.audio.mfcc for its placement)."""
    hops: np.ndarray = field(repr=False)
    """(4, 15) float32 MFCC and prosody (engine.audio.prosody) of the frame's own four hops
    [4k, 4k + 4), in step with ``voiced``, for the emotion encoder's sliding window
    (exact for look-aheads up to 24 hops)."""
    level_db: float
    """RMS level of the frame's own samples in dBFS, >= SILENCE_DB."""
    voiced: bool
    """True if the VAD speech state is on in any 20 ms block of the frame."""


@dataclass(frozen=True)
class FrontEndOptions:
    window: WindowSpec = field(default_factory=WindowSpec)
    vad: VadOptions = field(default_factory=VadOptions)


def level_dbfs(samples: np.ndarray) -> float:
    """RMS level of (n,) float samples in dBFS (a full-scale sine is -3 dB)."""
    if samples.size == 0:
        return SILENCE_DB
    rms = float(np.sqrt(np.mean(np.square(samples, dtype=np.float64))))
    return max(SILENCE_DB, 20.0 * np.log10(max(rms, 1e-12)))


class AudioFrontEnd:
    """One session's audio analysis state. Not thread-safe: one caller at a time."""

    def __init__(
        self,
        input_rate: int = SAMPLE_RATE,
        options: FrontEndOptions = FrontEndOptions(),
        transform: HopFeatures | None = None,
    ) -> None:
        self.options = options
        self.input_rate = input_rate
        self._resampler = StreamingResampler(input_rate, SAMPLE_RATE)
        self._mfcc = StreamingMfcc(transform or HopFeatures())
        self._vad = VoiceActivityDetector(options.vad)
        # MFCC rows from absolute frame _mfcc_start on; rows before the stream starts are
        # the zeros of silence, so every window is a plain slice.
        self._mfcc_start = min(0, options.window.end(0) - MFCC_WINDOW_FRAMES)
        self._mfcc_frames = np.tile(SILENCE_HOP, (-self._mfcc_start, 1))
        self._samples = np.zeros(0, np.float32)  # 16 kHz samples of unfinished frames
        self._samples_start = 0  # absolute index of _samples[0]
        self._vad_states: list[bool] = []  # per 20 ms block, from _samples_start
        self._levels: dict[int, float] = {}
        self._voiced: dict[int, bool] = {}
        self.frames_emitted = 0

    @property
    def samples_received(self) -> int:
        """16 kHz samples received so far."""
        return self._mfcc.samples_received

    @property
    def delay_seconds(self) -> float:
        """Input time a frame's record lags its end: resampler delay plus look-ahead."""
        return self._resampler.delay_seconds + self.options.window.lookahead_seconds

    def push_input(self, mono: np.ndarray) -> list[FrameFeatures]:
        """(n,) float32 mono at input_rate (see pcm.to_mono_float32) -> completed records."""
        return self.push(self._resampler.push(mono))

    def push(self, samples: np.ndarray) -> list[FrameFeatures]:
        """(n,) float32 16 kHz mono -> records of the video frames it completes."""
        x = np.asarray(samples, dtype=np.float32).reshape(-1)
        self._analyse_levels(x)
        self._append_mfcc(self._mfcc.push(x))
        return self._emit()

    def finish(self) -> list[FrameFeatures]:
        """End of stream: flush the last (possibly partial) frames with zero padding."""
        self._append_mfcc(self._mfcc.finish())
        last = n_video_frames(self.samples_received)
        missing = self.options.window.end(last - 1) - self._mfcc_start - len(self._mfcc_frames)
        self._append_mfcc(np.tile(SILENCE_HOP, (max(0, missing), 1)))
        tail = self._samples
        if tail.size:
            k = self._samples_start // SAMPLES_PER_VIDEO_FRAME
            self._levels[k] = level_dbfs(tail)
            self._voiced[k] = any(self._vad_states) or self._vad.in_speech
        return self._emit()

    def _analyse_levels(self, x: np.ndarray) -> None:
        self._vad_states.extend(self._vad.push(x).tolist())
        self._samples = np.concatenate([self._samples, x])
        while self._samples.size >= SAMPLES_PER_VIDEO_FRAME:
            k = self._samples_start // SAMPLES_PER_VIDEO_FRAME
            frame = self._samples[:SAMPLES_PER_VIDEO_FRAME]
            self._levels[k] = level_dbfs(frame)
            self._voiced[k] = any(self._vad_states[:_VAD_BLOCKS_PER_FRAME])
            self._vad_states = self._vad_states[_VAD_BLOCKS_PER_FRAME:]
            self._samples = self._samples[SAMPLES_PER_VIDEO_FRAME:]
            self._samples_start += SAMPLES_PER_VIDEO_FRAME

    def _append_mfcc(self, frames: np.ndarray) -> None:
        if frames.size:
            self._mfcc_frames = np.concatenate([self._mfcc_frames, frames])

    def _emit(self) -> list[FrameFeatures]:
        spec = self.options.window
        available = self._mfcc_start + self._mfcc_frames.shape[0]
        # Row of hop 4k in frame k's window: the window ends L hops after the frame does.
        own = max(0, MFCC_WINDOW_FRAMES - MFCC_HOPS_PER_VIDEO_FRAME - spec.lookahead_hops)
        out = []
        k = self.frames_emitted
        while k in self._levels and spec.end(k) <= available:
            start = spec.end(k) - MFCC_WINDOW_FRAMES - self._mfcc_start
            rows = self._mfcc_frames[start : start + MFCC_WINDOW_FRAMES]
            out.append(
                FrameFeatures(
                    index=k,
                    mfcc=rows[:, :MFCC_N_COEFFS].copy(),
                    hops=rows[own : own + MFCC_HOPS_PER_VIDEO_FRAME].copy(),
                    level_db=self._levels.pop(k),
                    voiced=self._voiced.pop(k),
                )
            )
            k += 1
        self.frames_emitted = k
        # Forget MFCC rows that no future window reaches.
        drop = max(0, spec.end(k) - MFCC_WINDOW_FRAMES - self._mfcc_start)
        drop = min(drop, self._mfcc_frames.shape[0])
        self._mfcc_frames = self._mfcc_frames[drop:]
        self._mfcc_start += drop
        return out


def analyse_offline(
    signal: np.ndarray, options: FrontEndOptions = FrontEndOptions()
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Whole 16 kHz signal -> (windows (K, 28, 12), level_db (K,), voiced (K,)).

    The batch counterpart of AudioFrontEnd, for training and for checking the stream.
    """
    x = np.asarray(signal, dtype=np.float32).reshape(-1)
    count = n_video_frames(x.size)
    windows = video_frame_windows(compute_mfcc(x), count, options.window)
    vad = VoiceActivityDetector(options.vad)
    states = vad.push(x)
    frames = [
        x[k * SAMPLES_PER_VIDEO_FRAME : (k + 1) * SAMPLES_PER_VIDEO_FRAME] for k in range(count)
    ]
    levels = np.array([level_dbfs(f) for f in frames])
    voiced = np.zeros(count, dtype=bool)
    for k in range(count):
        block = states[k * _VAD_BLOCKS_PER_FRAME : (k + 1) * _VAD_BLOCKS_PER_FRAME]
        voiced[k] = bool(block.any()) if block.size else vad.in_speech
    return windows, levels, voiced
