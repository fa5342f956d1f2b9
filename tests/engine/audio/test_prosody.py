import numpy as np
import pytest

from engine.audio.frontend import AudioFrontEnd
from engine.audio.mfcc import compute_mfcc
from engine.audio.prosody import compute_hop_features


@pytest.mark.parametrize("f0", [90.0, 150.0, 220.0, 400.0])
def test_pitch_of_a_harmonic_tone(f0):
    t = np.arange(16000) / 16000
    tone = 0.3 * np.sin(2 * np.pi * f0 * t) + 0.1 * np.sin(2 * np.pi * 2 * f0 * t)
    features = compute_hop_features(tone)[5:-5]
    estimated = 100 * 2 ** features[:, 13]
    assert np.median(np.abs(estimated / f0 - 1)) < 0.02
    assert features[:, 14].min() > 0.7  # clearly voiced (threshold 0.45)
    assert abs(np.median(features[:, 12]) - 20 * np.log10(np.sqrt(0.3**2 / 2 + 0.1**2 / 2))) < 1.0


def test_silence_and_noise_are_unvoiced():
    assert (compute_hop_features(np.zeros(8000))[:, 13:] == 0).all()
    noise = np.random.default_rng(0).standard_normal(16000) * 0.1
    assert (compute_hop_features(noise)[:, 14] < 0.45).mean() > 0.95


def test_first_columns_are_the_mfcc_and_the_stream_matches(speech):
    audio = speech[: 3 * 16000]
    offline = compute_hop_features(audio)
    np.testing.assert_allclose(offline[:, :12], compute_mfcc(audio), atol=1e-4)
    front = AudioFrontEnd()
    records = []
    for start in range(0, audio.size, 480):
        records += front.push(audio[start : start + 480])
    records += front.finish()
    # Frame k carries its own hops [4k, 4k + 4), in step with its voice activity flag.
    streamed = np.concatenate([r.hops for r in records])
    assert len(streamed) >= len(offline) - 1
    np.testing.assert_allclose(streamed[: len(offline)], offline[: len(streamed)], atol=1e-3)
    # Past the end of the stream the padding reads as silence, not as a loud hop.
    assert streamed[len(offline) :, 12].max(initial=-100.0) <= -99.0


def test_speech_span_drops_the_silence_around_an_utterance(speech):
    from engine.audio.prosody import speech_span

    padded = np.concatenate([np.zeros(16000), speech[16000:48000], np.zeros(8000)])
    hops = compute_hop_features(padded)
    span = speech_span(hops, min_hops=25)
    assert 95 <= span.start <= 110 and 200 <= span.stop <= 305  # hops are 10 ms
    assert speech_span(compute_hop_features(np.zeros(8000)), 25) == slice(0, 51)  # nothing loud
