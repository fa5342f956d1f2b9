import numpy as np
import pytest

from engine.audio.vad import VadOptions, VoiceActivityDetector
from engine.constants import SAMPLE_RATE


def release_blocks(speech: np.ndarray, hangover_ms: float) -> int:
    """20 ms blocks of digital silence after speech before the speech state turns off."""
    vad = VoiceActivityDetector(VadOptions(hangover_ms=hangover_ms))
    assert vad.push(speech[: 2 * SAMPLE_RATE])[-1], "the clip ends mid-speech"
    after = vad.push(np.zeros(SAMPLE_RATE, np.float32))
    assert not after[-1] and not vad.in_speech
    return int(np.argmin(after))


def test_hangover_adds_exactly_its_length_then_releases(speech):
    # webrtcvad smooths on its own; our hangover comes on top, block for block.
    base = release_blocks(speech, 0)
    assert release_blocks(speech, 200) == base + 10
    assert release_blocks(speech, 100) == base + 5
    assert base * 20 <= 200, "webrtcvad alone releases within 200 ms"


def test_chunking_does_not_change_decisions(speech):
    y = speech[: 3 * SAMPLE_RATE]
    whole = VoiceActivityDetector().push(y)
    vad, parts = VoiceActivityDetector(), []
    for i in range(0, y.size, 777):
        parts.append(vad.push(y[i : i + 777]))
    np.testing.assert_array_equal(np.concatenate(parts), whole[: sum(p.size for p in parts)])


def test_onset_requires_consecutive_voiced_blocks(speech):
    quick = VoiceActivityDetector(VadOptions(onset_blocks=1)).push(speech[:SAMPLE_RATE])
    slow = VoiceActivityDetector(VadOptions(onset_blocks=5)).push(speech[:SAMPLE_RATE])
    assert np.argmax(slow) >= np.argmax(quick) + 4


def test_quiet_clicks_are_not_speech(speech):
    click = np.zeros(SAMPLE_RATE, np.float32)
    click[8000:8040] = 0.002 * np.hanning(40)  # a lip smack at -70 dBFS peak
    click += 1e-5 * np.random.default_rng(0).standard_normal(click.size).astype(np.float32)
    assert not VoiceActivityDetector().push(click).any()
    assert VoiceActivityDetector().push(speech[:SAMPLE_RATE]).any()


def test_options_are_validated():
    with pytest.raises(ValueError, match="aggressiveness"):
        VadOptions(aggressiveness=7)
