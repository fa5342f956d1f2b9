"""Prosody per MFCC hop: level, pitch and voicing, on the MFCC's own 25 ms frames.

MFCCs without c0 describe the spectral envelope and say little about pitch and loudness,
which carry much of a voice's emotion. Each 10 ms hop therefore also gets

    level_db   RMS level of the frame in dBFS (>= -100)
    log_f0     log2(F0 / 100 Hz) from the normalised autocorrelation peak in 70-500 Hz;
               0 where the frame is unvoiced
    voicing    the height of that peak, 0..1 (periodicity)

``HopFeatures`` computes MFCC and prosody together: (m, 400) frames -> (m, 15).
"""

import numpy as np

from engine.audio.mfcc import MfccTransform, compute_mfcc
from engine.constants import MFCC_N_COEFFS, MFCC_WIN_LENGTH, SAMPLE_RATE

N_PROSODY = 3
N_HOP_FEATURES = MFCC_N_COEFFS + N_PROSODY
MIN_F0_HZ, MAX_F0_HZ = 70.0, 500.0
VOICING_THRESHOLD = 0.45
LEVEL_FLOOR_DB = -100.0
_ACF_FFT = 1024
#: The hop features of digital silence, used to pad before a stream starts and after it ends
#: (MFCC 0 as the window padding has always been, level at the floor, unvoiced).
SILENCE_HOP = np.array(
    [0.0] * 12 + [-100.0, 0.0, 0.0], dtype=np.float32
)  # >= 2 * 400: linear, not circular, autocorrelation


class ProsodyTransform:
    def __init__(self) -> None:
        n = np.arange(MFCC_WIN_LENGTH)
        self.window = 0.5 - 0.5 * np.cos(2 * np.pi * n / MFCC_WIN_LENGTH)
        window_acf = np.fft.irfft(np.abs(np.fft.rfft(self.window, _ACF_FFT)) ** 2)[:MFCC_WIN_LENGTH]
        self.window_acf = window_acf / window_acf[0]  # corrects the taper's bias towards short lags
        self.min_lag = int(SAMPLE_RATE / MAX_F0_HZ)
        self.max_lag = int(SAMPLE_RATE / MIN_F0_HZ)

    def __call__(self, frames: np.ndarray) -> np.ndarray:
        """(m, 400) samples -> (m, 3) float32 [level_db, log_f0, voicing]."""
        frames = np.asarray(frames, dtype=np.float64)
        power = np.mean(frames**2, axis=1)
        level = np.maximum(10.0 * np.log10(np.maximum(power, 1e-12)), LEVEL_FLOOR_DB)
        centred = (frames - frames.mean(axis=1, keepdims=True)) * self.window
        acf = np.fft.irfft(np.abs(np.fft.rfft(centred, _ACF_FFT, axis=1)) ** 2, axis=1)
        lags = slice(self.min_lag, self.max_lag + 1)
        normalised = acf[:, lags] / np.maximum(acf[:, :1], 1e-12) / self.window_acf[lags]
        # The shortest lag close to the highest peak: multiples of the period score as high.
        peak = normalised.max(axis=1, keepdims=True)
        best = np.argmax(normalised >= 0.9 * peak, axis=1)
        rows = np.arange(len(best))
        for _ in range(self.max_lag - self.min_lag):  # climb to that peak's top
            nxt = np.minimum(best + 1, normalised.shape[1] - 1)
            rising = normalised[rows, nxt] > normalised[rows, best]
            if not rising.any():
                break
            best = np.where(rising, nxt, best)
        voicing = np.clip(peak[:, 0], 0.0, 1.0)
        voicing[power < 1e-9] = 0.0  # digital silence and near it has no pitch
        f0 = SAMPLE_RATE / (best + self.min_lag)
        log_f0 = np.where(voicing >= VOICING_THRESHOLD, np.log2(f0 / 100.0), 0.0)
        return np.stack([level, log_f0, voicing], axis=1).astype(np.float32)


class HopFeatures:
    """(m, 400) frames -> (m, 15): 12 MFCC then level, log-F0, voicing."""

    def __init__(self) -> None:
        self.mfcc = MfccTransform()
        self.prosody = ProsodyTransform()

    def __call__(self, frames: np.ndarray) -> np.ndarray:
        return np.concatenate([self.mfcc(frames), self.prosody(frames)], axis=1)


def compute_hop_features(signal: np.ndarray) -> np.ndarray:
    """(n,) 16 kHz mono -> (1 + n // 160, 15) MFCC and prosody of the whole signal; the
    rows equal the ``hops`` the streaming front-end emits."""
    return compute_mfcc(signal, HopFeatures())


SPEECH_SPAN_DB = 35.0  # hops this far below the loudest one are leading/trailing silence


def speech_span(hops: np.ndarray, min_hops: int = 1) -> slice:
    """The stretch of a clip from its first to its last hop within SPEECH_SPAN_DB of the
    loudest hop (level is column -3): drops the silence around an utterance."""
    level = hops[:, -N_PROSODY]
    loud: np.ndarray | list[int] = (
        np.flatnonzero(level >= level.max() - SPEECH_SPAN_DB) if len(level) else []
    )
    if len(loud) == 0 or loud[-1] + 1 - loud[0] < min_hops:
        return slice(0, len(hops))
    return slice(int(loud[0]), int(loud[-1]) + 1)


def relative_loudness(level_db: np.ndarray) -> np.ndarray:
    """(...,) levels in dB -> 0..1 between the clip's own 10th and 99th percentiles, so
    microphone gain and background level do not matter."""
    level_db = np.asarray(level_db, dtype=np.float64)
    floor, top = np.percentile(level_db, 10), np.percentile(level_db, 99)
    return np.clip((level_db - floor) / max(top - floor, 1e-6), 0.0, 1.0)
