import librosa
import numpy as np
import pytest

from engine.audio.mfcc import compute_mfcc
from engine.constants import SAMPLE_RATE
from engine.data.dtw import align_video_frames, cost_matrix, dtw, warp_to_first


def test_matches_librosa_dtw_on_random_sequences():
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((60, 12)), rng.standard_normal((45, 12))
    path, cost = dtw(a, b)
    total, reference = librosa.sequence.dtw(C=cost_matrix(a, b))
    assert cost == pytest.approx(total[-1, -1])
    assert cost == pytest.approx(cost_matrix(a, b)[path[:, 0], path[:, 1]].sum())
    np.testing.assert_array_equal(path, reference[::-1])


def test_path_obeys_the_step_constraints():
    rng = np.random.default_rng(1)
    path, _ = dtw(rng.standard_normal((30, 4)), rng.standard_normal((50, 4)))
    assert tuple(path[0]) == (0, 0) and tuple(path[-1]) == (29, 49)
    steps = {tuple(s) for s in np.diff(path, axis=0)}
    assert steps <= {(1, 0), (0, 1), (1, 1)}


def test_recovers_a_known_warp_of_real_speech(speech):
    a = compute_mfcc(speech[: 3 * SAMPLE_RATE])  # 301 frames
    n = len(a)
    # b is a slowed down then sped up: frame j of b shows frame f(j) of a
    f = np.concatenate(
        [np.arange(0, 100), 100 + np.arange(0, 150) / 1.5, 200 + np.arange(0, 70) * 1.45]
    )
    f = np.clip(np.round(f).astype(int), 0, n - 1)
    b = a[f]
    path, _ = dtw(b, a)
    recovered = warp_to_first(path, len(b))
    assert np.abs(recovered - f).max() <= 1
    assert np.mean(recovered == f) > 0.9


def test_video_frame_pairs_of_two_emotions_of_one_sentence(shared_data):
    from engine.data.ravdess import load_ravdess
    from engine.wav import read_wav

    records = load_ravdess(shared_data / "ravdess").records
    pick = {
        r.emotion: r for r in records if r.speaker == "ravdess-03" and r.sentence == "ravdess-s01"
    }
    a = read_wav(pick["neutral"].path, SAMPLE_RATE)
    b = read_wav(pick["angry"].path, SAMPLE_RATE)
    ma, mb = compute_mfcc(a), compute_mfcc(b)
    path, cost = dtw(ma, mb)
    frames_a, frames_b = -(-a.size // 640), -(-b.size // 640)
    pairs = align_video_frames(path, len(ma), frames_a)
    assert pairs.shape == (frames_a,) and pairs.min() >= 0 and pairs.max() < frames_b
    assert np.all(np.diff(pairs) >= 0)  # monotonic: time never runs backwards
    # Same sentence aligns better than different sentences by the same speaker.
    other = read_wav(
        next(
            r
            for r in records
            if r.speaker == "ravdess-03" and r.sentence == "ravdess-s02" and r.emotion == "angry"
        ).path,
        SAMPLE_RATE,
    )
    _, cost_other = dtw(ma, compute_mfcc(other))
    assert cost / len(path) < cost_other / len(dtw(ma, compute_mfcc(other))[0])


def test_bad_input():
    with pytest.raises(ValueError, match="non-empty"):
        dtw(np.zeros((0, 3)), np.zeros((4, 3)))
