"""The GPU backends' logic that runs without a GPU: CUDA-graph batching (eagerly here) and
TensorRT engine lookup. Engine and graph execution themselves need a GPU and skip."""

import numpy as np
import pytest
import torch

from engine.errors import EngineError
from engine.model.networks import LandmarkStep
from engine.runtime.backends import BackendUnavailable
from engine.runtime.cuda_graphs import GraphedModule, bucket
from engine.runtime.landmarks import SHIPPED_ONNX, TorchLandmarks
from engine.runtime.loading import load_landmark_runtime
from engine.runtime.tensorrt import TensorRTLandmarks, find_engine
from engine.runtime.tensorrt_engines import engine_key

HAS_CUDA = torch.cuda.is_available()


def test_batches_are_padded_to_a_bucket_and_sliced_back():
    assert [bucket(n) for n in (1, 2, 3, 5, 16, 17, 64)] == [1, 2, 4, 8, 16, 32, 64]
    with pytest.raises(EngineError, match="more than the 64"):
        bucket(65)
    model = TorchLandmarks("engine/model/weights/evp-a2l.safetensors", "cpu")._model
    step = LandmarkStep(model).eval()
    graphed = GraphedModule(step, (0, 0, 0, 1, 1), (0, 1, 1), capture=False)
    g = torch.Generator().manual_seed(0)
    n, config = 5, model.config
    inputs = (
        torch.randn(n, config.content_dim, generator=g),
        torch.randn(n, config.emotion_dim, generator=g),
        torch.randn(n, config.identity_dim, generator=g),
        torch.randn(config.lstm_layers, n, config.hidden, generator=g),
        torch.randn(config.lstm_layers, n, config.hidden, generator=g),
    )
    with torch.no_grad():
        expected, got = step(*inputs), graphed(*inputs)
    assert [tuple(x.shape) for x in got] == [tuple(x.shape) for x in expected]
    for e, x in zip(expected, got, strict=True):
        assert torch.abs(e - x).max() < 1e-5  # padding rows never leak into real ones


def test_engines_are_found_by_gpu_tensorrt_and_model_or_the_error_says_how_to_build(tmp_path):
    onnx_path = SHIPPED_ONNX / "content.onnx"
    with pytest.raises(
        BackendUnavailable, match=r"no TensorRT engine .* \(sm90\) .*evp export trt"
    ):
        find_engine(onnx_path, tmp_path, (9, 0), "10.3.0", "run `evp export trt`")
    other = tmp_path / f"content.{engine_key(onnx_path, (8, 9), '10.3.0', True)}.engine"
    other.write_bytes(b"engine for an Ada GPU")
    with pytest.raises(BackendUnavailable, match="has content.sm89-trt10.3.0-fp16.*another GPU"):
        find_engine(onnx_path, tmp_path, (9, 0), "10.3.0", "run `evp export trt`")
    fp32 = tmp_path / f"content.{engine_key(onnx_path, (9, 0), '10.3.0', False)}.engine"
    fp32.write_bytes(b"")
    assert find_engine(onnx_path, tmp_path, (9, 0), "10.3.0", "") == (fp32, "fp32")
    fp16 = tmp_path / f"content.{engine_key(onnx_path, (9, 0), '10.3.0', True)}.engine"
    fp16.write_bytes(b"")
    assert find_engine(onnx_path, tmp_path, (9, 0), "10.3.0", "") == (fp16, "fp16")  # preferred


@pytest.mark.skipif(HAS_CUDA, reason="a GPU is visible")
def test_asking_for_a_gpu_backend_without_one_says_why():
    with pytest.raises(
        BackendUnavailable, match="TensorRT is not installed|no GPU|none is visible"
    ):
        TensorRTLandmarks()
    with pytest.raises(BackendUnavailable):
        load_landmark_runtime("tensorrt")
    assert load_landmark_runtime("auto").name == "onnx"  # and auto never tries them


@pytest.mark.skipif(not HAS_CUDA, reason="needs a GPU")
def test_cuda_graphs_and_fp16_keep_parity_on_the_gpu():
    from engine.avatar.bundle import AvatarLibrary
    from engine.runtime.generator import TorchGenerator
    from server.settings import DEFAULT_AVATARS
    from trt_build.verify import verify_generator

    avatar = AvatarLibrary(DEFAULT_AVATARS).get("default")
    result = verify_generator(avatar, TorchGenerator(avatar.generator_weights, "cuda"))
    assert result["ok"], result
    cpu, gpu = TorchLandmarks(device="cpu"), TorchLandmarks(device="cuda")
    rng = np.random.default_rng(0)
    for n in (3, 3, 5):  # the second call replays the graph captured by the first
        windows = rng.standard_normal((n, 28, 12)).astype(np.float32)
        assert np.abs(cpu.content(windows) - gpu.content(windows)).max() < 1e-3
    n, e = 3, cpu.emotion_means.shape[1]
    identity = cpu.identity(rng.standard_normal((n, 68, 2)).astype(np.float32) * 0.3)
    code = np.repeat(cpu.emotion_means[:1], n, 0)
    states = [np.zeros((cpu.layers, n, cpu.hidden), np.float32) for _ in range(4)]
    for _ in range(50):  # (h, c) carried through the graphed step
        content = cpu.content(rng.standard_normal((n, 28, 12)).astype(np.float32))
        a, *states[:2] = cpu.step(content, code, identity, *states[:2])
        b, *states[2:] = gpu.step(content, code, identity, *states[2:])
        assert np.abs(a - b).max() < 1e-3
    assert e == code.shape[1]


def test_auto_tries_the_gpu_backends_in_order_and_logs_each_skip(monkeypatch, caplog):
    from engine.runtime import backends

    def unavailable(why):
        def load():
            raise BackendUnavailable(why)

        return load

    loaders = {
        "tensorrt": unavailable("no engines"),
        "torch": lambda: "torch runtime",
        "onnx": lambda: "onnx runtime",
    }
    monkeypatch.setattr(backends, "cuda_visible", lambda: True)
    with caplog.at_level("INFO", logger="engine.runtime.backends"):
        assert backends.choose("auto", loaders, "the thing") == "torch runtime"
    assert "the thing cannot use tensorrt: no engines" in caplog.text
    assert "the thing on torch" in caplog.text
    loaders["torch"] = unavailable("broken CUDA")
    assert backends.choose("auto", loaders, "the thing") == "onnx runtime"
    with pytest.raises(BackendUnavailable, match="no engines"):  # named: no fallback
        backends.choose("tensorrt", loaders, "the thing")
    loaders["tensorrt"] = lambda: 1 / 0  # a real bug is not swallowed by auto
    with pytest.raises(ZeroDivisionError):
        backends.choose("auto", loaders, "the thing")
    monkeypatch.setattr(backends, "cuda_visible", lambda: False)
    assert backends.choose("auto", loaders, "the thing") == "onnx runtime"
