import librosa
import numpy as np
import pytest

from engine.audio.mfcc import (
    StreamingMfcc,
    WindowSpec,
    compute_mfcc,
    dct_matrix,
    mel_filterbank,
    n_video_frames,
    video_frame_windows,
)
from engine.constants import SAMPLE_RATE
from engine.wav import read_wav


def librosa_mfcc(y: np.ndarray) -> np.ndarray:
    """The reference definition (see engine.audio.mfcc), computed in float64."""
    mel = librosa.feature.melspectrogram(
        y=y.astype(np.float64),
        sr=SAMPLE_RATE,
        n_fft=512,
        hop_length=160,
        win_length=400,
        n_mels=26,
        center=True,
    )
    return librosa.feature.mfcc(S=librosa.power_to_db(mel, top_db=None), n_mfcc=13)[1:].T


def stream(y: np.ndarray, rng: np.random.Generator, max_chunk: int) -> np.ndarray:
    extractor, out, i = StreamingMfcc(), [], 0
    while i < y.size:
        n = int(rng.integers(1, max_chunk + 1))
        out.append(extractor.push(y[i : i + n]))
        i += n
    out.append(extractor.finish())
    return np.concatenate(out)


def test_filterbank_and_dct_match_librosa_and_scipy():
    import scipy.fft

    reference = librosa.filters.mel(sr=SAMPLE_RATE, n_fft=512, n_mels=26)
    np.testing.assert_allclose(mel_filterbank(), reference, atol=1e-7)
    x = np.random.default_rng(0).standard_normal(26)
    np.testing.assert_allclose(dct_matrix() @ x, scipy.fft.dct(x, norm="ortho")[:13], atol=1e-12)


def test_offline_matches_librosa_on_real_speech(speech_files):
    for path in speech_files:
        y = read_wav(path, SAMPLE_RATE)
        ours, ref = compute_mfcc(y), librosa_mfcc(y)
        assert ours.shape == ref.shape == (1 + y.size // 160, 12)
        assert np.abs(ours - ref).max() <= 1e-3, path.name


@pytest.mark.parametrize("max_chunk", [1, 37, 160, 641, 5000])
def test_streaming_equals_offline_on_real_speech_for_any_chunking(speech_files, max_chunk):
    rng = np.random.default_rng(max_chunk)
    for path in speech_files:
        y = read_wav(path, SAMPLE_RATE)[: 8 * SAMPLE_RATE if max_chunk == 1 else None]
        streamed, whole = stream(y, rng, max_chunk), compute_mfcc(y)
        assert streamed.shape == whole.shape
        assert np.abs(streamed - whole).max() <= 1e-3, path.name
        assert np.abs(streamed - librosa_mfcc(y)).max() <= 1e-3, path.name


@pytest.mark.filterwarnings("ignore:n_fft=512 is too large")  # librosa on signals < 512
@pytest.mark.parametrize(
    "name, signal",
    [
        ("silence", np.zeros(SAMPLE_RATE)),
        (
            "full-scale square (clipping)",
            np.sign(np.sin(2 * np.pi * 220 * np.arange(SAMPLE_RATE) / SAMPLE_RATE)),
        ),
        ("one sample", np.array([0.5])),
        ("shorter than a window", np.random.default_rng(3).uniform(-1, 1, 150)),
        ("tiny noise", 1e-7 * np.random.default_rng(4).standard_normal(SAMPLE_RATE)),
    ],
)
def test_streaming_equals_offline_and_librosa_on_edge_cases(name, signal):
    signal = signal.astype(np.float32)
    streamed = stream(signal, np.random.default_rng(5), 300)
    np.testing.assert_allclose(streamed, compute_mfcc(signal), atol=1e-3, err_msg=name)
    np.testing.assert_allclose(streamed, librosa_mfcc(signal), atol=1e-3, err_msg=name)


def test_silence_gives_zero_mfcc_which_is_what_windows_pad_with():
    assert np.abs(compute_mfcc(np.zeros(4000))).max() < 1e-4


def test_evp_window_placement_and_lookahead():
    mfcc = np.arange(100, dtype=np.float32)[:, None].repeat(12, axis=1) + 1  # row j holds j + 1
    windows = video_frame_windows(mfcc, count=10, spec=WindowSpec(12))
    assert windows.shape == (10, 28, 12)
    # EVP: video frame k takes MFCC frames [(k-3)*4, (k+4)*4); negative frames are zeros.
    np.testing.assert_array_equal(windows[5, :, 0], np.arange(8, 36) + 1)
    np.testing.assert_array_equal(windows[0, :12, 0], 0)
    np.testing.assert_array_equal(windows[0, 12:, 0], np.arange(0, 16) + 1)
    assert WindowSpec(12).lookahead_seconds == pytest.approx(0.1225)
    assert WindowSpec(4).lookahead_seconds == pytest.approx(0.0425)
    # Less look-ahead slides the window back in time by the difference.
    low = video_frame_windows(mfcc, count=10, spec=WindowSpec(4))
    np.testing.assert_array_equal(low[5, :, 0], windows[5, :, 0] - 8)


def test_invalid_lookahead_is_rejected():
    with pytest.raises(ValueError, match="lookahead_hops"):
        WindowSpec(-1)


def test_video_frame_count_covers_partial_frames():
    assert n_video_frames(640) == 1 and n_video_frames(641) == 2 and n_video_frames(0) == 0
