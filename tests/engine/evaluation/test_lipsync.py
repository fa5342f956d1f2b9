"""evp eval lipsync: the lag search, the amplitude ratio, and a real clip end to end."""

import json
import os

import numpy as np
import pytest

from engine.evaluation.lipsync import MAX_LAG_S, amplitude_ratio
from engine.targets.sync import best_lag


def speech_like(times: np.ndarray) -> np.ndarray:
    """A mouth opening that moves like speech: a few syllable rates summed."""
    return np.sin(2 * np.pi * 4.1 * times) + 0.6 * np.sin(2 * np.pi * 2.3 * times + 1.0)


@pytest.mark.parametrize("lag_s", [-0.08, 0.0, 0.05, 0.11])
def test_the_lag_of_a_delayed_copy_is_found_with_full_correlation(lag_s):
    times = np.arange(0, 6, 1 / 30)  # a 30 fps clip
    reference = speech_like(times)
    late = speech_like(times - lag_s)  # the same motion, lag_s later
    sync = best_lag(times, reference, late, MAX_LAG_S)
    assert sync.lag_s == pytest.approx(lag_s, abs=0.011)
    assert sync.r > 0.99


def test_a_lag_beyond_the_search_is_not_found_and_r_drops():
    times = np.arange(0, 6, 1 / 25)
    reference = speech_like(times)
    sync = best_lag(times, reference, speech_like(times - 0.3), MAX_LAG_S)
    assert abs(sync.lag_s) <= MAX_LAG_S and sync.r < 0.9


def test_a_still_mouth_has_no_correlation():
    times = np.arange(0, 3, 1 / 25)
    assert best_lag(times, speech_like(times), np.full_like(times, 0.2), MAX_LAG_S).r is None


def test_the_amplitude_ratio_is_the_spread_of_the_prediction_over_the_real_one():
    reference = speech_like(np.arange(0, 4, 0.04))
    assert amplitude_ratio(reference, 0.14 * reference + 3.0) == pytest.approx(0.14)
    assert np.isnan(amplitude_ratio(np.ones(10), reference[:10]))


def test_a_real_clip_is_evaluated_against_both_baselines(shared_data, tmp_path, capsys):
    """A held-out speaker is scored; a speaker the shipped model trained on is skipped."""
    from server.cli import main

    clip = shared_data / "talking2" / "spectre_LRS3_00002.mp4"
    trained = shared_data / "talking2" / "lipnet_evaluation_GRID_bbaf2n.mp4"
    clips = tmp_path / "clips"
    clips.mkdir()
    for path in (clip, trained):
        os.symlink(path, clips / path.name)
    png = tmp_path / "openings.png"
    assert main(["eval", "lipsync", "--clips", str(clips), "--json", "--png", str(png)]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["clips"] == 1 and png.stat().st_size > 0
    figures = result["per_clip"][clip.stem]
    assert figures["frames"] > 40  # 2 s at 25 fps, tracked
    assert result["skipped"] == [
        [str(clips / trained.name), "the model trained on this speaker (grid)"]
    ]
    assert figures["mean_face"]["r"] is None and figures["mean_face"]["amplitude"] == 0
    for method in ("model", "audio_energy"):
        assert -1 <= figures[method]["r"] <= 1 and abs(figures[method]["lag_ms"]) <= 120
        assert figures[method]["amplitude"] > 0 and figures[method]["M-LD"] > 0
    assert result["mean"]["model"]["r"] == figures["model"]["r"]
