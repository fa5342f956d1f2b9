"""What of the TensorRT path runs without TensorRT; engine tests skip cleanly here."""

import importlib.util
import json

import pytest

from engine.errors import EngineError
from engine.runtime.landmarks import SHIPPED_ONNX
from engine.runtime.tensorrt_engines import MAX_BATCH, engine_key, profile_shapes

HAS_TENSORRT = importlib.util.find_spec("tensorrt") is not None


def test_profiles_cover_one_to_64_sessions_and_emotion_windows():
    spec = json.loads((SHIPPED_ONNX / "models.json").read_text())
    step = profile_shapes(spec["models"]["landmark_step"])
    assert step["content"] == ((1, 128), (16, 128), (MAX_BATCH, 128))
    assert step["h"] == ((1, 1, 256), (1, 16, 256), (1, MAX_BATCH, 256))
    hops = profile_shapes(spec["models"]["emotion"])["hops"]
    assert hops == ((1, 25, 15), (16, 300, 15), (MAX_BATCH, 1000, 15))
    with pytest.raises(EngineError, match="unknown axis"):
        profile_shapes({"inputs": [{"name": "x", "shape": ["W", 3]}]})


def test_engine_keys_change_with_gpu_tensorrt_precision_and_model(tmp_path):
    a, b = tmp_path / "a.onnx", tmp_path / "b.onnx"
    a.write_bytes(b"model a")
    b.write_bytes(b"model b")
    key = engine_key(a, (9, 0), "10.3.0", True)
    assert key.startswith("sm90-trt10.3.0-fp16-")
    assert engine_key(a, (9, 0), "10.3.0", True) == key
    others = {
        engine_key(a, (8, 9), "10.3.0", True),
        engine_key(a, (9, 0), "10.4.0", True),
        engine_key(a, (9, 0), "10.3.0", False),
        engine_key(b, (9, 0), "10.3.0", True),
    }
    assert key not in others and len(others) == 4


@pytest.mark.skipif(HAS_TENSORRT, reason="TensorRT is installed: the message is not needed")
def test_without_tensorrt_the_cli_says_what_to_install(tmp_path, capsys):
    from server.cli import main
    from trt_build.onnx_export import SPEC_FILE

    assert main(["export", "trt", "--dir", str(SHIPPED_ONNX), "--out", str(tmp_path)]) == 2
    assert "pip install tensorrt-cu12" in capsys.readouterr().err
    assert main(["export", "trt", "--dir", str(tmp_path / "none"), "--out", str(tmp_path)]) == 2
    assert f"no {SPEC_FILE}" in capsys.readouterr().err


def test_inputs_outside_the_profile_are_refused_with_the_reason(tmp_path):
    from engine.runtime.tensorrt_engines import check_shape

    spec = json.loads((SHIPPED_ONNX / "models.json").read_text())
    profile = profile_shapes(spec["models"]["content"])["window"]
    engine = tmp_path / "content.sm90-trt10.3.0-abc.engine"
    check_shape("window", (64, 28, 12), profile, engine)
    with pytest.raises(EngineError, match=r"\(65, 28, 12\) is outside .*content.sm90.*to \(64, 28"):
        check_shape("window", (65, 28, 12), profile, engine)
    with pytest.raises(EngineError, match="outside"):
        check_shape("window", (1, 28), profile, engine)


def test_an_avatar_generator_gets_a_batch_profile_too():
    from engine.runtime.onnx import io_spec

    avatar = SHIPPED_ONNX.parents[3] / "avatars" / "default" / "generator.onnx"
    io = io_spec(avatar)
    shapes = profile_shapes(io)["guided"]
    assert shapes == ((1, 10, 256, 256), (16, 10, 256, 256), (MAX_BATCH, 10, 256, 256))
