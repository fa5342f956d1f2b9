"""Read WAV files into the engine's 16 kHz mono float32 (any rate, channels, PCM width)."""

import wave
from pathlib import Path

import numpy as np

from engine.audio.pcm import interleaved_to_planar, to_mono_float32
from engine.audio.resample import StreamingResampler
from engine.errors import AudioFormatError

_DTYPES = {2: np.int16, 4: np.int32}


def read_wav(path: Path | str, sample_rate: int | None = None) -> np.ndarray:
    """(n,) float32 mono; resampled to ``sample_rate`` if given. PCM16/PCM32 only."""
    try:
        with wave.open(str(path)) as w:
            width, channels, rate = w.getsampwidth(), w.getnchannels(), w.getframerate()
            raw = w.readframes(w.getnframes())
    except (wave.Error, EOFError) as e:
        raise AudioFormatError(f"{path}: not a PCM WAV file ({e})") from e
    if width not in _DTYPES:
        raise AudioFormatError(f"{path}: {8 * width}-bit WAV not supported; use 16 or 32-bit PCM")
    planar = interleaved_to_planar(np.frombuffer(raw, _DTYPES[width]), channels)
    mono, _ = to_mono_float32(planar)
    if sample_rate is not None and sample_rate != rate:
        mono = StreamingResampler(rate, sample_rate).push(mono)
    return mono
