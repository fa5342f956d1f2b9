import json

import pytest

from engine.errors import EngineError
from engine.model.checkpoint import DEFAULT_WEIGHTS, load_checkpoint
from trt_build.onnx_export import SPEC_FILE, export_onnx
from trt_build.verify import verify_onnx


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    out = tmp_path_factory.mktemp("onnx")
    export_onnx(load_checkpoint(DEFAULT_WEIGHTS), DEFAULT_WEIGHTS, out)
    return out


def test_the_export_describes_every_input_and_output_with_a_dynamic_batch(exported):
    spec = json.loads((exported / SPEC_FILE).read_text())
    assert set(spec["models"]) == {"content", "emotion", "identity", "classifier", "landmark_step"}
    assert spec["models"]["classifier"]["outputs"][0]["shape"] == ["N", 8]
    space = spec["emotion_space"]
    assert len(space["means"]) == 8 and len(space["means"][0]) == 32 and len(space["counts"]) == 8
    step = spec["models"]["landmark_step"]
    assert [v["name"] for v in step["inputs"]] == ["content", "emotion", "identity", "h", "c"]
    assert [v["name"] for v in step["outputs"]] == ["displacement", "h_out", "c_out"]
    assert step["inputs"][3]["shape"] == [1, "N", 256]
    assert spec["models"]["emotion"]["inputs"][0]["shape"] == ["N", "H", 15]
    assert all(v["dtype"] == "float32" for m in spec["models"].values() for v in m["inputs"])


def test_onnx_runtime_matches_pytorch_within_tolerance(exported):
    result = verify_onnx(load_checkpoint(DEFAULT_WEIGHTS), DEFAULT_WEIGHTS, exported)
    assert result["ok"], result
    assert result["landmark_sequence"]["frames"] == 250
    assert result["landmark_sequence"]["max_abs_error"] <= 1e-3


def test_stale_or_missing_exports_say_how_to_rebuild(exported, tmp_path):
    spec = json.loads((exported / SPEC_FILE).read_text())
    (tmp_path / SPEC_FILE).write_text(json.dumps(spec | {"digest": "0" * 16}))
    with pytest.raises(EngineError, match="evp export onnx"):
        verify_onnx(load_checkpoint(DEFAULT_WEIGHTS), DEFAULT_WEIGHTS, tmp_path)
    (tmp_path / SPEC_FILE).write_text(json.dumps(spec))
    with pytest.raises(EngineError, match="missing .*content.onnx"):
        verify_onnx(load_checkpoint(DEFAULT_WEIGHTS), DEFAULT_WEIGHTS, tmp_path)
    with pytest.raises(EngineError, match="no models.json"):
        verify_onnx(load_checkpoint(DEFAULT_WEIGHTS), DEFAULT_WEIGHTS, tmp_path / "nowhere")


def test_the_verify_command_checks_an_avatar_generator_too(capsys):
    from server.cli import main

    assert main(["export", "verify", "--avatar", "default"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["ok"] and result["backend"] == "onnx"
    assert result["generator"]["psnr_db"] >= 40 and result["generator"]["backend"] == "onnx"
