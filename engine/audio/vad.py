"""Voice-activity detection: webrtcvad decisions on 20 ms blocks, with onset and hangover.

Raw webrtcvad decisions flicker inside words; the mouth should not. A speech state turns
on after ``onset_blocks`` voiced blocks in a row and stays on until ``hangover_ms`` of
unvoiced blocks have passed.
"""

from dataclasses import dataclass

import numpy as np
import webrtcvad

from engine.audio.pcm import float_to_int16
from engine.constants import SAMPLE_RATE, VAD_FRAME_SAMPLES

VAD_BLOCK_SECONDS = VAD_FRAME_SAMPLES / SAMPLE_RATE  # 0.02


@dataclass(frozen=True)
class VadOptions:
    aggressiveness: int = 2
    """webrtcvad mode 0 (permissive) .. 3 (strict)."""
    onset_blocks: int = 1
    """Voiced 20 ms blocks in a row needed to enter speech."""
    hangover_ms: float = 200.0
    """How long speech persists after the last voiced block."""
    min_level_db: float = -60.0
    """Blocks quieter than this (RMS dBFS) are never voiced: webrtcvad alone fires on
    clicks and breaths in near-digital silence."""

    def __post_init__(self) -> None:
        if self.aggressiveness not in (0, 1, 2, 3):
            raise ValueError(f"VAD aggressiveness must be 0..3, got {self.aggressiveness}")
        if self.onset_blocks < 1 or self.hangover_ms < 0:
            raise ValueError("VAD onset_blocks must be >= 1 and hangover_ms >= 0")


class VoiceActivityDetector:
    """push((n,) 16 kHz float samples) -> (m,) bool speech state per completed 20 ms block."""

    def __init__(self, options: VadOptions = VadOptions()) -> None:
        self.options = options
        self._vad = webrtcvad.Vad(options.aggressiveness)
        self._hangover_blocks = int(np.ceil(options.hangover_ms / 1000 / VAD_BLOCK_SECONDS))
        self._min_rms = 32768 * 10 ** (options.min_level_db / 20)  # in int16 units
        self._pending = np.zeros(0, np.int16)
        self._voiced_run = 0
        self._hangover_left = 0
        self.in_speech = False

    def push(self, samples: np.ndarray) -> np.ndarray:
        pcm = np.concatenate([self._pending, float_to_int16(samples)])
        n_blocks = pcm.size // VAD_FRAME_SAMPLES
        states = np.empty(n_blocks, dtype=bool)
        for i in range(n_blocks):
            block = pcm[i * VAD_FRAME_SAMPLES : (i + 1) * VAD_FRAME_SAMPLES]
            loud = np.sqrt(np.mean(np.square(block, dtype=np.float64))) >= self._min_rms
            states[i] = self._step(loud and self._vad.is_speech(block.tobytes(), SAMPLE_RATE))
        self._pending = pcm[n_blocks * VAD_FRAME_SAMPLES :]
        return states

    def _step(self, voiced: bool) -> bool:
        if voiced:
            self._voiced_run += 1
            if self._voiced_run >= self.options.onset_blocks:
                self.in_speech = True
                self._hangover_left = self._hangover_blocks
        else:
            self._voiced_run = 0
            if self._hangover_left > 0:
                self._hangover_left -= 1
            else:
                self.in_speech = False
        return self.in_speech
