"""Streaming rational resampling with a polyphase windowed-sinc FIR.

The output equals ``scipy.signal.upfirdn(filter, x, up, down)`` on the whole signal, for
any way of cutting ``x`` into chunks: the filter is applied to the zero-stuffed input and
every ``down``-th sample is kept, but only the taps that meet real samples are computed.
"""

import math

import numpy as np

from engine.errors import AudioFormatError

#: Zero crossings of the sinc on each side, at the lower of the two rates.
HALF_LENGTH = 24
#: Passband edge as a fraction of the lower Nyquist frequency.
ROLLOFF = 0.92
#: Kaiser window beta: about 80 dB of stop-band attenuation.
KAISER_BETA = 8.0


def design_lowpass(up: int, down: int) -> np.ndarray:
    """Anti-aliasing/anti-imaging FIR for resampling by up/down, gain ``up`` at DC.

    Returns (n_taps,) float64 with n_taps = 2 * HALF_LENGTH * max(up, down) + 1, so the
    group delay is exactly (n_taps - 1) / 2 samples of the upsampled stream.
    """
    if up == down == 1:
        return np.ones(1)
    factor = max(up, down)
    n_taps = 2 * HALF_LENGTH * factor + 1
    cutoff = 0.5 * ROLLOFF / factor  # cycles per upsampled sample
    t = np.arange(n_taps) - (n_taps - 1) / 2
    taps = 2 * cutoff * np.sinc(2 * cutoff * t) * np.kaiser(n_taps, KAISER_BETA)
    return taps * (up / taps.sum())


class StreamingResampler:
    """Resample a mono stream from ``input_rate`` to ``output_rate`` chunk by chunk.

    push(x) takes (n,) float samples at input_rate and returns the float32 output samples
    that those inputs complete. State is the last few input samples and two counters.
    """

    def __init__(self, input_rate: int, output_rate: int) -> None:
        if input_rate <= 0 or output_rate <= 0:
            raise AudioFormatError(
                f"sample rates must be positive, got {input_rate} -> {output_rate} Hz"
            )
        g = math.gcd(input_rate, output_rate)
        self.input_rate = input_rate
        self.output_rate = output_rate
        self.up = output_rate // g
        self.down = input_rate // g
        self.taps = design_lowpass(self.up, self.down)
        self._n_phase_taps = -(-self.taps.size // self.up)  # ceil
        padded = np.zeros(self._n_phase_taps * self.up)
        padded[: self.taps.size] = self.taps
        # polyphase[p, m] = taps[p + m * up]: the taps that meet input x[i0 - m].
        self._polyphase = padded.reshape(self._n_phase_taps, self.up).T.copy()
        self._history = np.zeros(self._n_phase_taps - 1)
        self._n_in = 0  # input samples consumed so far
        self._n_out = 0  # output samples produced so far

    @property
    def delay_seconds(self) -> float:
        """Group delay of the filter: output sample n reflects input time n/out - delay."""
        return (self.taps.size - 1) / 2 / (self.up * self.input_rate)

    def push(self, samples: np.ndarray) -> np.ndarray:
        """(n,) input samples -> (m,) float32 output samples, m ~= n * up / down."""
        x = np.asarray(samples, dtype=np.float64).reshape(-1)
        buffer = np.concatenate([self._history, x])
        buffer_start = self._n_in - self._history.size  # absolute index of buffer[0]
        self._n_in += x.size

        # Output n needs input i0 = floor(n * down / up) and the K-1 samples before it.
        last_n = ((self._n_in - 1) * self.up) // self.down if self._n_in else -1
        n = np.arange(self._n_out, last_n + 1)
        out = np.empty(0, np.float32)
        if n.size:
            i0, phase = np.divmod(n * self.down, self.up)
            gather = (i0 - buffer_start)[:, None] - np.arange(self._n_phase_taps)[None, :]
            out = np.einsum(
                "nk,nk->n", self._polyphase[phase], buffer[gather], optimize=False
            ).astype(np.float32)
            self._n_out = int(n[-1]) + 1

        keep = self._n_phase_taps - 1
        self._history = buffer[buffer.size - keep :] if keep else buffer[:0]
        return out
