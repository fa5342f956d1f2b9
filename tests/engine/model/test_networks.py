import numpy as np
import pytest
import torch

from engine.errors import EngineError
from engine.model.checkpoint import load_checkpoint, save_checkpoint
from engine.model.inference import LandmarkModel
from engine.model.networks import ModelConfig
from tests.engine.model.helpers import random_checkpoint


@pytest.fixture
def checkpoint():
    return random_checkpoint(ModelConfig(content_dim=32, emotion_dim=8, identity_dim=8, hidden=32))


def test_shapes_at_every_boundary(checkpoint):
    model = checkpoint.model
    windows = torch.randn(3, 28, 12)
    content = model.content(windows)
    assert content.shape == (3, 32)
    for hops in (40, 300):  # any clip length gives one code
        assert model.emotion(torch.randn(2, hops, 15)).shape == (2, 8)
    emotion = model.emotion(torch.randn(3, 100, 15))
    assert model.decoder(content, emotion).shape == (3, 28, 12)
    assert model.classifier(emotion).shape == (3, 8)
    identity = model.identity(torch.randn(2, 68, 2))
    displacement, (h, c) = model.landmarks(torch.randn(2, 5, 32), torch.randn(2, 5, 8), identity)
    assert displacement.shape == (2, 5, 68, 2) and h.shape == c.shape == (1, 2, 32)


def test_emotion_code_ignores_gain_and_speaker_pitch_offset(checkpoint):
    """Prosody enters relative to the clip: a louder copy gives the same code."""
    hops = torch.randn(1, 120, 15)
    hops[..., 14] = torch.rand(1, 120)
    louder = hops.clone()
    louder[..., 12] += 12.0  # +12 dB on every hop
    model = checkpoint.model
    assert torch.allclose(model.emotion(hops), model.emotion(louder), atol=1e-5)


def test_checkpoint_round_trip_keeps_config_weights_and_space(checkpoint, tmp_path):
    path = tmp_path / "model.safetensors"
    save_checkpoint(checkpoint, path)
    loaded = load_checkpoint(path)
    assert loaded.config == checkpoint.config
    assert torch.equal(loaded.means, checkpoint.means) and loaded.info == checkpoint.info
    windows = np.random.default_rng(0).standard_normal((10, 28, 12)).astype(np.float32)
    neutral = np.random.default_rng(1).standard_normal((68, 2)).astype(np.float32)
    code = checkpoint.means[1].numpy()
    a = LandmarkModel(checkpoint).predict(windows, code, neutral)
    b = LandmarkModel(loaded).predict(windows, code, neutral)
    np.testing.assert_array_equal(a, b)
    assert not list(tmp_path.glob("*.partial"))


def test_unreadable_or_foreign_files_are_refused(tmp_path):
    with pytest.raises(EngineError, match="no model checkpoint"):
        load_checkpoint(tmp_path / "missing.safetensors")
    torn = tmp_path / "torn.safetensors"
    torn.write_bytes(b"\x10\x00\x00\x00garbage")
    with pytest.raises(EngineError, match="not a readable"):
        load_checkpoint(torn)


def test_bad_inputs_get_clear_errors(checkpoint):
    model = LandmarkModel(checkpoint)
    with pytest.raises(EngineError, match=r"\(T, 28, 12\)"):
        model.predict(
            np.zeros((4, 12, 28), np.float32), checkpoint.means[0].numpy(), np.zeros((68, 2))
        )
    with pytest.raises(EngineError, match="neutral landmarks"):
        model.predict(
            np.zeros((4, 28, 12), np.float32), checkpoint.means[0].numpy(), np.zeros((20, 2))
        )
    with pytest.raises(EngineError, match="emotion codes"):
        model.predict(np.zeros((4, 28, 12), np.float32), np.zeros(3), np.zeros((68, 2)))


def test_stripped_half_precision_checkpoint_keeps_only_some_networks(checkpoint, tmp_path):
    path = tmp_path / "small.safetensors"
    save_checkpoint(checkpoint, path, networks=("content", "emotion"), dtype=torch.float16)
    loaded = load_checkpoint(path)
    assert loaded.info["networks"] == ["content", "emotion"]
    windows = torch.randn(4, 28, 12)
    torch.testing.assert_close(
        loaded.model.content(windows), checkpoint.model.content(windows), atol=2e-2, rtol=1e-2
    )
    full = tmp_path / "full.safetensors"
    save_checkpoint(checkpoint, full)
    assert path.stat().st_size < full.stat().st_size / 2


def test_untrained_networks_are_refused(checkpoint, tmp_path):
    """A stripped ablation file holds no trained landmark networks: no random landmarks."""
    path = tmp_path / "ablation.safetensors"
    save_checkpoint(checkpoint, path, networks=("content", "emotion", "decoder", "classifier"))
    with pytest.raises(EngineError, match="'landmarks' stage"):
        LandmarkModel(load_checkpoint(path))
    with pytest.raises(EngineError, match="shorter than one 40 ms"):
        LandmarkModel(checkpoint).predict(
            np.zeros((0, 28, 12), np.float32), np.zeros(8), np.zeros((68, 2))
        )
