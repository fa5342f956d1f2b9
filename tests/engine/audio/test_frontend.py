import numpy as np
import pytest

from engine.audio.frontend import (
    SILENCE_DB,
    AudioFrontEnd,
    FrontEndOptions,
    analyse_offline,
    level_dbfs,
)
from engine.audio.mfcc import WindowSpec
from engine.audio.resample import StreamingResampler
from engine.constants import SAMPLE_RATE
from engine.wav import read_wav


def run_stream(frontend: AudioFrontEnd, y: np.ndarray, rng: np.random.Generator, max_chunk: int):
    records, i = [], 0
    while i < y.size:
        n = int(rng.integers(1, max_chunk + 1))
        records += frontend.push(y[i : i + n])
        i += n
    return records + frontend.finish()


@pytest.mark.parametrize("lookahead_hops", [12, 4, 0])
def test_stream_equals_offline_on_real_speech(speech_files, lookahead_hops):
    options = FrontEndOptions(window=WindowSpec(lookahead_hops))
    rng = np.random.default_rng(lookahead_hops)
    for path in speech_files:
        y = read_wav(path, SAMPLE_RATE)
        records = run_stream(AudioFrontEnd(options=options), y, rng, 2000)
        windows, levels, voiced = analyse_offline(y, options)
        assert [r.index for r in records] == list(range(len(windows)))
        assert np.abs(np.stack([r.mfcc for r in records]) - windows).max() <= 1e-3
        np.testing.assert_allclose([r.level_db for r in records], levels, atol=1e-6)
        np.testing.assert_array_equal([r.voiced for r in records], voiced)
        assert 0.5 < voiced.mean() < 1.0, "real speech has both speech and pauses"


def test_records_wait_for_exactly_the_lookahead():
    frontend = AudioFrontEnd(options=FrontEndOptions(window=WindowSpec(12)))
    # Frame 0 needs MFCC frame 15, centred on sample 2400, whose window ends at 2600.
    assert frontend.push(np.zeros(2599, np.float32)) == []
    assert [r.index for r in frontend.push(np.zeros(1, np.float32))] == [0]


def test_48k_webrtc_input_matches_16k_analysis_of_the_same_speech(speech):
    """Through the resampler: 48 kHz in, equivalent features out (band-limited speech)."""
    y = speech[: 4 * SAMPLE_RATE]
    up = StreamingResampler(SAMPLE_RATE, 48_000).push(y)
    frontend = AudioFrontEnd(48_000)
    records = []
    for i in range(0, up.size, 960):
        records += frontend.push_input(up[i : i + 960])
    direct = analyse_offline(y)[1]
    levels = np.array([r.level_db for r in records])
    n = len(levels) - 4
    # Same loudness per frame within 1 dB on voiced frames (the filters' delays differ by 3 ms).
    loud = direct[:n] > -40
    assert np.abs(levels[:n][loud] - direct[:n][loud]).mean() < 1.0


def test_levels_of_known_signals():
    t = np.arange(SAMPLE_RATE) / SAMPLE_RATE
    assert level_dbfs(np.sin(2 * np.pi * 440 * t)) == pytest.approx(-3.01, abs=0.01)
    assert level_dbfs(np.zeros(640)) == SILENCE_DB
    assert level_dbfs(np.zeros(0)) == SILENCE_DB


def test_silence_is_not_voiced_and_speech_is(speech):
    silence = analyse_offline(np.zeros(2 * SAMPLE_RATE, np.float32))[2]
    assert not silence.any()
    assert analyse_offline(speech)[2].mean() > 0.5
