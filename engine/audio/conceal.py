"""Filling a hole in live audio (a lost packet) without a click or a sudden silence.

The hole gets the audio before it played back and forth (a mirror at every turn, so the
waveform never jumps), at full level for the first 20 ms and fading to silence by 60 ms;
the first 2.5 ms of the audio after it crossfade from that continuation. Silence instead
would click twice and close the avatar's mouth for a packet.
"""

import numpy as np

SOURCE_S = 0.02  # of the audio before the hole, played back and forth
HOLD_S = 0.02  # full level for this long into the hole
FADE_OUT_S = 0.04  # then to silence over this long
CROSSFADE_S = 0.0025  # into the audio after the hole


def conceal(
    before: np.ndarray, gap: int, after: np.ndarray, rate: int
) -> tuple[np.ndarray, np.ndarray]:
    """(n,) float32 audio before a hole of ``gap`` samples and (m,) after it -> the (gap,)
    fill and ``after`` with its start crossfaded from the fill (a copy)."""
    if gap < 0:
        raise ValueError(f"a hole has a length >= 0, got {gap}")
    fade = min(round(CROSSFADE_S * rate), after.size)
    source = np.asarray(before[-round(SOURCE_S * rate) :], np.float32)
    if source.size == 0:  # nothing to continue: silence, and the audio after fades in
        continuation = np.zeros(gap + fade, np.float32)
    else:
        turns = np.concatenate([source[::-1], source])
        repeats = -(-(gap + fade) // turns.size)
        continuation = np.tile(turns, repeats)[: gap + fade]
        t = np.arange(gap + fade) / rate
        continuation *= np.clip(1 - (t - HOLD_S) / FADE_OUT_S, 0.0, 1.0).astype(np.float32)
    joined = np.array(after, np.float32, copy=True)
    ramp = np.linspace(0.0, 1.0, fade, endpoint=False, dtype=np.float32)
    joined[:fade] = ramp * joined[:fade] + (1 - ramp) * continuation[gap:]
    return continuation[:gap], joined
