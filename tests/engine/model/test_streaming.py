"""Streaming inference: one LSTM step per video frame equals the whole sequence at once."""

import numpy as np
import pytest

from engine.audio.frontend import AudioFrontEnd, FrontEndOptions
from engine.model.inference import LandmarkModel
from engine.model.networks import ModelConfig
from tests.engine.model.helpers import random_checkpoint


@pytest.fixture
def model():
    return LandmarkModel(random_checkpoint(ModelConfig(lookahead_hops=4), seed=3))


def test_frame_by_frame_equals_whole_sequence(model, speech):
    audio = speech[: 4 * 16000]
    windows, _ = model.windows(audio)
    rng = np.random.default_rng(0)
    neutral = rng.standard_normal((68, 2)).astype(np.float32) * 0.3
    codes = rng.standard_normal((len(windows), model.checkpoint.config.emotion_dim)).astype(
        np.float32
    )
    whole = model.predict(windows, codes, neutral)

    # The live path: the streaming front-end fed in 20 ms chunks, one step per frame.
    front = AudioFrontEnd(options=FrontEndOptions(window=model.window))
    records = []
    for start in range(0, audio.size, 320):
        records += front.push(audio[start : start + 320])
    records += front.finish()
    stream = model.stream(neutral)
    stepped = np.stack([stream.step(r.mfcc, codes[r.index]) for r in records])
    assert stepped.shape == whole.shape == (len(windows), 68, 2)
    np.testing.assert_allclose(stepped, whole, atol=1e-5)
    assert np.abs(np.diff(whole, axis=0)).max() > 1e-4  # the sequence is not trivially constant


def test_reset_starts_a_new_utterance(model):
    windows = np.random.default_rng(1).standard_normal((6, 28, 12)).astype(np.float32)
    code = np.zeros(model.checkpoint.config.emotion_dim, np.float32)
    neutral = np.zeros((68, 2), np.float32)
    stream = model.stream(neutral)
    first = [stream.step(w, code) for w in windows]
    stream.reset()
    again = [stream.step(w, code) for w in windows]
    np.testing.assert_allclose(first, again, atol=1e-6)
