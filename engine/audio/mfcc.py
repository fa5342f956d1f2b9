"""Windowed MFCC as in EVP: one 28 x 12 window of 10 ms MFCC frames per 40 ms video frame.

Definition (identical to librosa, which the tests hold it to)::

    librosa.feature.mfcc(
        S=librosa.power_to_db(
            librosa.feature.melspectrogram(y=y, sr=16000, n_fft=512, hop_length=160,
                                           win_length=400, n_mels=26, center=True),
            top_db=None),
        n_mfcc=13)[1:]

MFCC frame j is centred on sample ``j * 160`` and sees samples ``[j*160 - 200, j*160 + 200)``
through a periodic Hann window; samples before the stream start are zeros. ``top_db`` is
off because its clamp depends on the loudest frame of the whole file, which a stream does
not know. Frames outside the signal are zeros: that is exactly the MFCC of digital
silence once c0 is dropped (a constant log-mel vector has no higher cepstral terms).

Video frame k (samples ``[640k, 640k + 640)``) gets MFCC frames
``[4(k+1) + L - 28, 4(k+1) + L)`` where L is the look-ahead in hops. EVP uses L = 12, i.e.
frames ``[(k-3)*4, (k+4)*4)``; the audio needed past the end of the video frame is
``L * 10 ms + 2.5 ms`` (122.5 ms for EVP, 42.5 ms for L = 4).
"""

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from engine.constants import (
    EVP_LOOKAHEAD_HOPS,
    MFCC_AMIN,
    MFCC_HOP_LENGTH,
    MFCC_HOPS_PER_VIDEO_FRAME,
    MFCC_N_COEFFS,
    MFCC_N_FFT,
    MFCC_N_MELS,
    MFCC_WIN_LENGTH,
    MFCC_WINDOW_FRAMES,
    SAMPLE_RATE,
    SAMPLES_PER_VIDEO_FRAME,
)

_HALF_WINDOW = MFCC_WIN_LENGTH // 2  # 200 samples each side of a frame's centre


def _hz_to_mel(hz: npt.ArrayLike) -> np.ndarray:
    """Slaney's mel scale: linear below 1 kHz, logarithmic above (librosa, htk=False)."""
    hz = np.asarray(hz, dtype=np.float64)
    f_sp = 200.0 / 3
    min_log_hz, logstep = 1000.0, np.log(6.4) / 27.0
    min_log_mel = min_log_hz / f_sp
    linear = hz / f_sp
    log = min_log_mel + np.log(np.maximum(hz, min_log_hz) / min_log_hz) / logstep
    return np.where(hz >= min_log_hz, log, linear)


def _mel_to_hz(mel: npt.ArrayLike) -> np.ndarray:
    mel = np.asarray(mel, dtype=np.float64)
    f_sp = 200.0 / 3
    min_log_hz, logstep = 1000.0, np.log(6.4) / 27.0
    min_log_mel = min_log_hz / f_sp
    linear = mel * f_sp
    log = min_log_hz * np.exp(logstep * (mel - min_log_mel))
    return np.where(mel >= min_log_mel, log, linear)


def mel_filterbank(
    sample_rate: int = SAMPLE_RATE, n_fft: int = MFCC_N_FFT, n_mels: int = MFCC_N_MELS
) -> np.ndarray:
    """(n_mels, n_fft // 2 + 1) Slaney-normalised triangular filters, 0 Hz to Nyquist."""
    fft_freqs = np.linspace(0.0, sample_rate / 2, n_fft // 2 + 1)
    mel_points = _mel_to_hz(np.linspace(_hz_to_mel(0.0), _hz_to_mel(sample_rate / 2), n_mels + 2))
    widths = np.diff(mel_points)
    ramps = mel_points[:, None] - fft_freqs[None, :]
    lower = -ramps[:-2] / widths[:-1, None]
    upper = ramps[2:] / widths[1:, None]
    weights = np.maximum(0.0, np.minimum(lower, upper))
    weights *= (2.0 / (mel_points[2:] - mel_points[:-2]))[:, None]
    return weights


def dct_matrix(n_in: int = MFCC_N_MELS, n_out: int = MFCC_N_COEFFS + 1) -> np.ndarray:
    """(n_out, n_in) orthonormal DCT-II, as scipy.fft.dct(norm='ortho')."""
    k = np.arange(n_out)[:, None]
    n = np.arange(n_in)[None, :]
    basis = np.cos(np.pi * k * (2 * n + 1) / (2 * n_in)) * np.sqrt(2.0 / n_in)
    basis[0] /= np.sqrt(2.0)
    return basis


#: (m, 400) analysis windows -> (m, k) feature rows: MfccTransform, or one that adds
#: columns to it (engine.audio.prosody.HopFeatures).
FrameTransform = Callable[[np.ndarray], np.ndarray]


class MfccTransform:
    """Analysis windows -> MFCC rows. Holds the precomputed window, filters and DCT."""

    def __init__(self) -> None:
        n = np.arange(MFCC_WIN_LENGTH)
        self.window = 0.5 - 0.5 * np.cos(2 * np.pi * n / MFCC_WIN_LENGTH)  # periodic Hann
        self.filters = mel_filterbank()
        self.dct = dct_matrix()[1:]  # drop c0

    def __call__(self, frames: np.ndarray) -> np.ndarray:
        """(m, 400) samples -> (m, 12) float32 MFCC."""
        spectrum = np.fft.rfft(frames * self.window, n=MFCC_N_FFT, axis=-1)
        power = spectrum.real**2 + spectrum.imag**2
        log_mel = 10.0 * np.log10(np.maximum(power @ self.filters.T, MFCC_AMIN))
        return (log_mel @ self.dct.T).astype(np.float32)


def n_mfcc_frames(n_samples: int) -> int:
    """Number of MFCC frames of a whole signal (librosa, center=True)."""
    return 1 + n_samples // MFCC_HOP_LENGTH


def n_video_frames(n_samples: int) -> int:
    """Number of 40 ms video frames covering a whole signal (the last may be partial)."""
    return -(-n_samples // SAMPLES_PER_VIDEO_FRAME)


def compute_mfcc(signal: np.ndarray, transform: FrameTransform | None = None) -> np.ndarray:
    """(n,) 16 kHz mono -> (1 + n // 160, 12) float32 MFCC of the whole signal."""
    x = np.asarray(signal, dtype=np.float64).reshape(-1)
    transform = transform or MfccTransform()
    count = n_mfcc_frames(x.size)
    padded = np.concatenate([np.zeros(_HALF_WINDOW), x, np.zeros(_HALF_WINDOW + MFCC_HOP_LENGTH)])
    starts = np.arange(count) * MFCC_HOP_LENGTH
    frames = np.lib.stride_tricks.sliding_window_view(padded, MFCC_WIN_LENGTH)[starts]
    return transform(frames)


@dataclass(frozen=True)
class WindowSpec:
    """Which MFCC frames feed video frame k. A model property, saved with checkpoints."""

    lookahead_hops: int = EVP_LOOKAHEAD_HOPS

    def __post_init__(self) -> None:
        if not 0 <= self.lookahead_hops <= MFCC_WINDOW_FRAMES:
            raise ValueError(
                f"lookahead_hops must be in [0, {MFCC_WINDOW_FRAMES}], got {self.lookahead_hops}"
            )

    def end(self, video_frame: int) -> int:
        """One past the last MFCC frame that video frame k uses."""
        return MFCC_HOPS_PER_VIDEO_FRAME * (video_frame + 1) + self.lookahead_hops

    @property
    def lookahead_seconds(self) -> float:
        """Audio needed past the end of a video frame before its window is complete."""
        extra = (self.lookahead_hops - 1) * MFCC_HOP_LENGTH + _HALF_WINDOW
        return extra / SAMPLE_RATE


def video_frame_windows(mfcc: np.ndarray, count: int, spec: WindowSpec) -> np.ndarray:
    """(n, 12) MFCC -> (count, 28, 12) windows; frames outside [0, n) are zeros."""
    first = spec.end(0) - MFCC_WINDOW_FRAMES
    last = spec.end(count - 1) if count else first
    lead = max(0, -first)
    padded = np.zeros((lead + max(last, mfcc.shape[0]), MFCC_N_COEFFS), np.float32)
    padded[lead : lead + mfcc.shape[0]] = mfcc
    ends = np.array([spec.end(k) for k in range(count)], dtype=np.int64) + lead
    index = ends[:, None] - MFCC_WINDOW_FRAMES + np.arange(MFCC_WINDOW_FRAMES)[None, :]
    return padded[index]


class StreamingMfcc:
    """MFCC frames of a stream, as soon as the samples each frame sees have arrived.

    push(x) takes (n,) 16 kHz samples and returns the (m, 12) frames they complete;
    finish() pads the end with zeros and returns the remaining frames, so the
    concatenation equals compute_mfcc() of the whole stream.
    """

    def __init__(self, transform: FrameTransform | None = None) -> None:
        self._transform = transform or MfccTransform()
        self._buffer = np.zeros(_HALF_WINDOW)  # the silence before the stream starts
        self._buffer_start = -_HALF_WINDOW  # absolute sample index of _buffer[0]
        self._n_samples = 0
        self.frames_done = 0

    @property
    def samples_received(self) -> int:
        return self._n_samples

    def push(self, samples: np.ndarray) -> np.ndarray:
        x = np.asarray(samples, dtype=np.float64).reshape(-1)
        self._buffer = np.concatenate([self._buffer, x])
        self._n_samples += x.size
        ready = (self._n_samples - _HALF_WINDOW) // MFCC_HOP_LENGTH + 1
        return self._emit(max(ready, self.frames_done))

    def finish(self) -> np.ndarray:
        """Frames up to the end of the stream, with zeros past its last sample."""
        total = n_mfcc_frames(self._n_samples)
        needed = (total - 1) * MFCC_HOP_LENGTH + _HALF_WINDOW - self._n_samples
        if needed > 0:
            self._buffer = np.concatenate([self._buffer, np.zeros(needed)])
        return self._emit(total)

    def _emit(self, until: int) -> np.ndarray:
        j = np.arange(self.frames_done, until)
        if j.size == 0:
            return np.zeros((0, MFCC_N_COEFFS), np.float32)
        starts = j * MFCC_HOP_LENGTH - _HALF_WINDOW - self._buffer_start
        windows = np.lib.stride_tricks.sliding_window_view(self._buffer, MFCC_WIN_LENGTH)
        out = self._transform(windows[starts])
        self.frames_done = until
        # Keep only what the next frame can still see.
        drop = until * MFCC_HOP_LENGTH - _HALF_WINDOW - self._buffer_start
        self._buffer = self._buffer[drop:]
        self._buffer_start += drop
        return out
