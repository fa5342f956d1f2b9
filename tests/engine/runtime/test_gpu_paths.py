"""The GPU backends' logic that runs without a GPU: CUDA-graph batching (eagerly here) and
TensorRT engine lookup. Engine and graph execution themselves need a GPU and skip."""

import numpy as np
import pytest
import torch

from engine.errors import EngineError
from engine.runtime.backends import BackendUnavailable
from engine.runtime.cuda_graphs import GraphedModule, bucket
from engine.runtime.landmarks import SHIPPED_ONNX, TorchLandmarks, load_landmark_runtime
from engine.runtime.tensorrt import TensorRTLandmarks, find_engine
from trt_build.onnx_export import LandmarkStep
from trt_build.tensorrt_engine import engine_key

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
    with pytest.raises(BackendUnavailable, match="has content.sm89.*another GPU"):
        find_engine(onnx_path, tmp_path, (9, 0), "10.3.0", "run `evp export trt`")
    fp32 = tmp_path / f"content.{engine_key(onnx_path, (9, 0), '10.3.0', False)}.engine"
    fp32.write_bytes(b"")
    assert find_engine(onnx_path, tmp_path, (9, 0), "10.3.0", "") == fp32
    fp16 = tmp_path / f"content.{engine_key(onnx_path, (9, 0), '10.3.0', True)}.engine"
    fp16.write_bytes(b"")
    assert find_engine(onnx_path, tmp_path, (9, 0), "10.3.0", "") == fp16  # preferred


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
def test_cuda_graphs_and_fp16_keep_parity_on_the_gpu(speech):
    from engine.avatar.bundle import AvatarLibrary
    from engine.runtime.generator import TorchGenerator
    from server.settings import DEFAULT_AVATARS
    from trt_build.verify import verify_generator

    avatar = AvatarLibrary(DEFAULT_AVATARS).get("default")
    result = verify_generator(avatar, TorchGenerator(avatar.generator_weights, "cuda"))
    assert result["ok"], result
    cpu, gpu = TorchLandmarks(device="cpu"), TorchLandmarks(device="cuda")
    windows = np.random.default_rng(0).standard_normal((3, 28, 12)).astype(np.float32)
    assert np.abs(cpu.content(windows) - gpu.content(windows)).max() < 1e-3
