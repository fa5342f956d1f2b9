import json

import numpy as np
import pytest
import torch

from engine.errors import EngineError
from engine.model.emotion_space import EmotionSpace
from engine.model.inference import LandmarkModel
from engine.runtime.backends import BackendUnavailable
from engine.runtime.landmarks import SHIPPED_ONNX, OnnxLandmarks, TorchLandmarks
from engine.runtime.loading import load_landmark_runtime


@pytest.fixture(scope="module")
def inputs(speech):
    model = LandmarkModel.load()
    windows, _ = model.windows(speech[: 16000 * 6])
    code = EmotionSpace.from_checkpoint(model.checkpoint).category("happy", 0.8)
    return model, windows.astype(np.float32), code.astype(np.float32), model.canonical_face


def _run(runtime, windows, code, neutral, sessions=1):
    """Step `sessions` copies of the clip as one batch, each delayed by 7 frames more."""
    frames = len(windows)
    h = np.zeros((runtime.layers, sessions, runtime.hidden), np.float32)
    c = np.zeros_like(h)
    identity = runtime.identity(np.repeat(neutral[None], sessions, 0).astype(np.float32))
    codes = np.repeat(code[None], sessions, 0)
    out = np.zeros((sessions, frames, 68, 2), np.float32)
    for t in range(frames + 7 * (sessions - 1)):
        index = np.clip(t - 7 * np.arange(sessions), 0, frames - 1)
        displacement, h_new, c_new = runtime.step(
            runtime.content(windows[index]), codes, identity, h, c
        )
        live = (t - 7 * np.arange(sessions) >= 0) & (t - 7 * np.arange(sessions) < frames)
        h[:, live], c[:, live] = h_new[:, live], c_new[:, live]  # waiting sessions keep state
        for s in np.flatnonzero(live):
            out[s, t - 7 * s] = neutral + displacement[s]
    return out


def test_onnx_runtime_and_pytorch_agree_on_landmarks_of_real_speech(inputs):
    model, windows, code, neutral = inputs
    reference = model.predict(windows, code, neutral)
    on_torch = _run(TorchLandmarks(), windows, code, neutral)[0]
    on_onnx = _run(OnnxLandmarks(), windows, code, neutral)[0]
    assert np.abs(on_torch - reference).max() < 1e-5
    assert np.abs(on_onnx - reference).max() < 1e-3  # the runtime issue's parity target


def test_batched_sessions_equal_one_session_at_a_time(inputs):
    _, windows, code, neutral = inputs
    runtime = OnnxLandmarks()
    alone = _run(runtime, windows, code, neutral)[0]
    together = _run(runtime, windows, code, neutral, sessions=3)
    for s in range(3):
        assert np.abs(together[s] - alone).max() < 1e-5


def test_emotion_encoders_agree(speech):
    from engine.audio.prosody import compute_hop_features

    hops = compute_hop_features(speech[: 16000 * 4])[None].astype(np.float32)
    a = TorchLandmarks().emotion(hops)
    b = OnnxLandmarks().emotion(hops)
    assert a.shape == b.shape == (1, 32) and np.abs(a - b).max() < 1e-4


def test_backend_choice_and_errors(tmp_path):
    expected = "torch" if torch.cuda.is_available() else "onnx"
    assert load_landmark_runtime("auto").name == expected
    with pytest.raises(EngineError, match="unknown backend"):
        load_landmark_runtime("magic")
    with pytest.raises(BackendUnavailable, match="evp export onnx"):
        OnnxLandmarks(tmp_path)
    other = tmp_path / "other.safetensors"
    other.write_bytes(b"not the shipped weights")
    with pytest.raises(BackendUnavailable, match="another checkpoint"):
        OnnxLandmarks(SHIPPED_ONNX, checkpoint_path=other)
    older = json.loads((SHIPPED_ONNX / "models.json").read_text())
    del older["models"]["classifier"], older["emotion_space"]
    (tmp_path / "models.json").write_text(json.dumps(older))
    with pytest.raises(
        BackendUnavailable, match="lacks classifier, emotion_space.*evp export onnx"
    ):
        OnnxLandmarks(tmp_path)
    if not torch.cuda.is_available():
        with pytest.raises(BackendUnavailable, match="no GPU is visible"):
            TorchLandmarks(device="cuda")


def test_the_emotion_space_is_the_same_on_onnx_runtime_and_pytorch(speech):
    """Serving builds its emotion space from the ONNX export alone (no torch)."""
    model = LandmarkModel.load()
    reference = EmotionSpace.from_checkpoint(model.checkpoint)
    served = EmotionSpace.from_runtime(OnnxLandmarks())
    assert served.known == reference.known
    assert OnnxLandmarks().lookahead_hops == model.checkpoint.config.lookahead_hops == 12
    np.testing.assert_allclose(served.means, reference.means, atol=1e-7)
    code, ref_code = served.from_signal(speech[:48000]), reference.from_signal(speech[:48000])
    assert np.abs(code - ref_code).max() < 1e-4
    served_p, ref_p = served.probabilities(code), reference.probabilities(ref_code)
    assert max(abs(served_p[e] - ref_p[e]) for e in served.known) < 1e-4
