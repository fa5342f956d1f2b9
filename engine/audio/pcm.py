"""Turn PCM of any layout into the engine's mono float32 in [-1, 1].

WebRTC decoders hand us interleaved or planar integer or float samples with one or more
channels. Everything past this module sees only mono float32, finite and clipped.
"""

from dataclasses import dataclass

import numpy as np

from engine.errors import AudioFormatError

_INT_SCALE = {np.dtype(np.int16): 32768.0, np.dtype(np.int32): 2147483648.0}


@dataclass(frozen=True)
class PcmReport:
    """What had to be repaired in one block: counts of samples, after downmixing."""

    non_finite: int
    clipped: int


def to_mono_float32(samples: np.ndarray) -> tuple[np.ndarray, PcmReport]:
    """Downmix planar PCM to mono float32 in [-1, 1].

    samples: (channels, n) array of int16, int32, float32 or float64; a 1-D array is
        taken as one channel. Integer PCM is scaled to [-1, 1); floats are taken as is.
    Returns (mono, report): mono is (n,) float32, NaN/inf replaced by 0 and values
    outside [-1, 1] clipped; report counts both repairs.
    """
    array = np.asarray(samples)
    if array.ndim == 1:
        array = array[np.newaxis, :]
    if array.ndim != 2 or array.shape[0] == 0:
        raise AudioFormatError(f"expected PCM shaped (channels, samples), got shape {array.shape}")
    if array.dtype in _INT_SCALE:
        mono = array.astype(np.float32).mean(axis=0) / np.float32(_INT_SCALE[array.dtype])
    elif array.dtype.kind == "f":
        with np.errstate(invalid="ignore", over="ignore"):
            mono = array.astype(np.float32).mean(axis=0)
    else:
        raise AudioFormatError(
            f"unsupported PCM dtype {array.dtype}; use int16, int32, float32 or float64"
        )

    finite = np.isfinite(mono)
    non_finite = int(mono.size - np.count_nonzero(finite))
    if non_finite:
        mono = np.where(finite, mono, np.float32(0.0))
    over = np.abs(mono) > 1.0
    clipped = int(np.count_nonzero(over))
    if clipped:
        mono = np.clip(mono, -1.0, 1.0)
    return mono.astype(np.float32, copy=False), PcmReport(non_finite, clipped)


def interleaved_to_planar(samples: np.ndarray, channels: int) -> np.ndarray:
    """(1, n * channels) interleaved PCM -> (channels, n) planar PCM."""
    flat = np.asarray(samples).reshape(-1)
    if channels < 1 or flat.size % channels:
        raise AudioFormatError(
            f"{flat.size} interleaved samples do not split into {channels} channels"
        )
    return flat.reshape(-1, channels).T


def float_to_int16(mono: np.ndarray) -> np.ndarray:
    """(n,) float in [-1, 1] -> (n,) int16, rounding and saturating."""
    return np.clip(np.rint(np.asarray(mono, np.float32) * 32767.0), -32768, 32767).astype(np.int16)
