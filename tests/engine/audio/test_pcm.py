import numpy as np
import pytest

from engine.audio.pcm import float_to_int16, interleaved_to_planar, to_mono_float32
from engine.errors import AudioFormatError


def test_int16_stereo_is_averaged_and_scaled():
    planar = np.array([[16384, -32768], [16384, 32767]], np.int16)
    mono, report = to_mono_float32(planar)
    np.testing.assert_allclose(mono, [0.5, -0.5 / 32768], atol=1e-6)
    assert mono.dtype == np.float32 and report.non_finite == report.clipped == 0


def test_nan_inf_and_overs_are_repaired_and_counted():
    mono, report = to_mono_float32(np.array([[np.nan, np.inf, 1.5, -3.0, 0.25]]))
    np.testing.assert_array_equal(mono, [0, 0, 1, -1, 0.25])
    assert (report.non_finite, report.clipped) == (2, 2)


@pytest.mark.parametrize("channels", [1, 2, 6])
def test_interleaved_layouts(channels):
    frames = np.arange(10 * channels, dtype=np.int16)
    planar = interleaved_to_planar(frames[None, :], channels)
    assert planar.shape == (channels, 10)
    np.testing.assert_array_equal(planar[:, 3], frames[3 * channels : 4 * channels])


def test_bad_layouts_say_what_is_wrong():
    with pytest.raises(AudioFormatError, match="do not split into 2 channels"):
        interleaved_to_planar(np.zeros(5, np.int16), 2)
    with pytest.raises(AudioFormatError, match="unsupported PCM dtype"):
        to_mono_float32(np.zeros((1, 4), np.uint8))
    with pytest.raises(AudioFormatError, match="channels, samples"):
        to_mono_float32(np.zeros((1, 2, 3)))


def test_float_to_int16_saturates():
    np.testing.assert_array_equal(float_to_int16(np.array([-1.5, 0, 1.0])), [-32768, 0, 32767])
