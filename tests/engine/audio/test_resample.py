import numpy as np
import pytest
import scipy.signal

from engine.audio.resample import StreamingResampler
from engine.errors import AudioFormatError


@pytest.mark.parametrize("rate_in", [48_000, 44_100, 32_000, 22_050, 16_000, 8_000])
def test_streaming_equals_upfirdn_for_any_chunking(rate_in):
    rng = np.random.default_rng(rate_in)
    x = rng.standard_normal(rate_in) * 0.3
    resampler = StreamingResampler(rate_in, 16_000)
    out, i = [], 0
    while i < x.size:
        n = int(rng.integers(1, 2500))
        out.append(resampler.push(x[i : i + n]))
        i += n
    y = np.concatenate(out)
    reference = scipy.signal.upfirdn(resampler.taps, x, resampler.up, resampler.down)
    assert abs(y.size - 16_000) <= 1
    np.testing.assert_allclose(y, reference[: y.size], atol=1e-5)


def test_passband_is_kept_and_aliases_are_removed():
    t = np.arange(48_000) / 48_000
    keep = StreamingResampler(48_000, 16_000).push(np.sin(2 * np.pi * 1000 * t))
    assert np.abs(keep[500:]).max() == pytest.approx(1.0, abs=0.01)
    alias = StreamingResampler(48_000, 16_000).push(np.sin(2 * np.pi * 10_000 * t))
    assert 20 * np.log10(np.abs(alias[500:]).max()) < -70  # would fold to 6 kHz


def test_delay_is_reported_and_passthrough_has_none():
    assert StreamingResampler(16_000, 16_000).delay_seconds == 0
    impulse = np.zeros(4800)
    impulse[1200] = 1.0
    out = StreamingResampler(48_000, 16_000).push(impulse)
    peak_time = np.argmax(np.abs(out)) / 16_000
    assert peak_time == pytest.approx(
        1200 / 48_000 + StreamingResampler(48_000, 16_000).delay_seconds, abs=1 / 16_000
    )


def test_bad_rates_are_rejected():
    with pytest.raises(AudioFormatError, match="positive"):
        StreamingResampler(0, 16_000)
