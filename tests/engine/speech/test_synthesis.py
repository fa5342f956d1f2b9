import itertools

import numpy as np
import pytest

pytest.importorskip("espeakng_loader")

from engine.audio.frontend import level_dbfs
from engine.constants import EMOTIONS, SAMPLE_RATE
from engine.speech.emotional import VOICES, emotion_prosody, synthesize
from engine.speech.espeak import Espeak

TEXT = "Kids are talking by the door."


@pytest.fixture(scope="module")
def espeak() -> Espeak:
    return Espeak()


def test_phone_timings_tile_the_audio(espeak):
    spoken = espeak.synthesize(TEXT)
    phones = spoken.phones
    assert len(phones) > 10
    assert all(p.end > p.start for p in phones)
    assert all(a.end == pytest.approx(b.start) for a, b in itertools.pairwise(phones))
    assert phones[-1].end == pytest.approx(spoken.seconds)
    # Speech energy sits inside the phones, not in the lead-in before the first one.
    lead = int(phones[0].start * spoken.sample_rate)
    assert np.abs(spoken.audio[:lead]).max() < 0.01 < np.abs(spoken.audio[lead:]).max()


def test_every_emotion_and_voice_synthesises_with_timings_matching_length(espeak):
    rng = np.random.default_rng(0)
    for i, emotion in enumerate(EMOTIONS):
        take = synthesize(espeak, TEXT, emotion, 1.0, VOICES[i % len(VOICES)], rng)
        assert take.audio.dtype == np.float32 and np.abs(take.audio).max() <= 1.0
        assert take.phones[-1].end == pytest.approx(take.seconds, abs=1 / SAMPLE_RATE)
        assert 0.8 < take.seconds < 4.0


def test_prosody_profiles_move_duration_and_loudness_as_intended(espeak):
    rng = np.random.default_rng(1)
    takes = {e: synthesize(espeak, TEXT, e, 1.0, "en-us", rng) for e in ("sad", "neutral", "angry")}
    assert takes["sad"].seconds > takes["neutral"].seconds > takes["angry"].seconds
    assert level_dbfs(takes["angry"].audio) > level_dbfs(takes["sad"].audio) + 3
    half = emotion_prosody("sad", 0.5, np.random.default_rng(2))
    full = emotion_prosody("sad", 1.0, np.random.default_rng(2))
    assert full.rate < half.rate < 165


def test_same_seed_same_take_and_bad_input(espeak):
    """espeak-ng's waveform varies a little run to run (noise in the voice variants, a few
    samples of length); the prosody, the phones and their timing are reproducible."""
    a = synthesize(espeak, TEXT, "happy", 0.7, "en-us+f3", np.random.default_rng(5))
    b = synthesize(espeak, TEXT, "happy", 0.7, "en-us+f3", np.random.default_rng(5))
    assert a.prosody == b.prosody
    assert [p.symbol for p in a.phones] == [p.symbol for p in b.phones]
    np.testing.assert_allclose([p.end for p in a.phones], [p.end for p in b.phones], atol=0.005)
    n = min(a.audio.size, b.audio.size)
    envelope = lambda x: np.sqrt(np.mean(x[: n // 160 * 160].reshape(-1, 160) ** 2, axis=1))
    assert np.corrcoef(envelope(a.audio), envelope(b.audio))[0, 1] > 0.95
    with pytest.raises(ValueError, match="empty text"):
        espeak.synthesize("   ")
    with pytest.raises(ValueError, match="unknown emotion"):
        emotion_prosody("bored", 1.0, np.random.default_rng(0))
