"""A hole in live audio is filled without a click and fades out when it is long."""

import numpy as np
import pytest

from engine.audio.conceal import conceal

RATE = 48_000


def voice(seconds: float, start: float = 0.0) -> np.ndarray:
    t = start + np.arange(round(seconds * RATE)) / RATE
    return (0.5 * np.sin(2 * np.pi * 180 * t) + 0.2 * np.sin(2 * np.pi * 470 * t)).astype(
        np.float32
    )


def largest_step(x: np.ndarray) -> float:
    return float(np.max(np.abs(np.diff(x))))


@pytest.mark.parametrize("gap_s", [0.02, 0.06, 0.2])
def test_the_filled_stream_has_no_step_larger_than_the_voice_itself(gap_s):
    before, after = voice(0.1037), voice(0.04, start=0.1037 + gap_s)  # neither ends at 0
    gap = round(gap_s * RATE)
    fill, joined = conceal(before, gap, after, RATE)
    assert fill.shape == (gap,) and joined.shape == after.shape
    stream = np.concatenate([before, fill, joined])
    natural = largest_step(voice(0.5))
    assert largest_step(stream) <= 1.3 * natural
    silence = np.concatenate([before, np.zeros(gap, np.float32), after])
    assert largest_step(silence) > 3 * natural  # what it replaces: a click each side


def test_a_short_hole_keeps_the_level_and_a_long_one_fades_to_silence():
    before, after = voice(0.1), voice(0.04)
    short, _ = conceal(before, round(0.02 * RATE), after, RATE)
    assert np.sqrt(np.mean(short**2)) == pytest.approx(np.sqrt(np.mean(before**2)), rel=0.2)
    long, _ = conceal(before, round(0.2 * RATE), after, RATE)
    assert np.abs(long[round(0.06 * RATE) :]).max() < 1e-6


def test_a_hole_at_the_start_is_silence_and_the_audio_after_fades_in():
    fill, joined = conceal(np.zeros(0, np.float32), 480, voice(0.02, start=0.01), RATE)
    assert not fill.any() and joined[0] == 0 and joined[200] != 0
    with pytest.raises(ValueError, match=">= 0"):
        conceal(voice(0.02), -1, voice(0.02), RATE)
