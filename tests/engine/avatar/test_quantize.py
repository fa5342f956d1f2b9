"""The INT8 generator: calibrated on the avatar's frames, kept only while quality holds."""

import json
import shutil

import numpy as np
import pytest

from engine.avatar import quantize
from engine.avatar.bundle import Avatar
from engine.errors import AvatarError
from engine.runtime.generator import OnnxGenerator
from engine.runtime.loading import load_generator_runtime
from server.settings import DEFAULT_AVATARS


@pytest.fixture
def bundle(tmp_path):
    """A copy of the shipped default avatar without its INT8 generator."""
    directory = tmp_path / "default"
    shutil.copytree(DEFAULT_AVATARS / "default", directory)
    (directory / quantize.GENERATOR_INT8).unlink(missing_ok=True)
    manifest = json.loads((directory / "manifest.json").read_text())
    for key in ("onnx_int8", "validation_int8"):
        manifest["generator"].pop(key, None)
    (directory / "manifest.json").write_text(json.dumps(manifest))
    return directory


def test_an_int8_generator_within_the_limits_is_written_listed_and_served(bundle):
    avatar = Avatar.load(bundle)
    assert avatar.generator_onnx_int8 is None
    assert load_generator_runtime(avatar, "onnx").name == "onnx"
    report = quantize.quantize_generator(avatar)
    fp32, int8 = report["fp32"], report["int8"]
    assert fp32["ssim"] - int8["ssim"] <= quantize.MAX_SSIM_LOSS
    assert fp32["psnr"] - int8["psnr"] <= quantize.MAX_PSNR_LOSS_DB
    assert not list(bundle.glob("*.partial"))
    reloaded = Avatar.load(bundle)
    assert reloaded.generator_onnx_int8 == bundle / quantize.GENERATOR_INT8
    assert reloaded.manifest.generator["validation_int8"] == int8
    served = load_generator_runtime(reloaded, "onnx")
    assert served.name == "onnx-int8"
    # The same face as the FP32 generator, to within quantization noise.
    x = quantize.calibration_inputs(reloaded, _renderer(reloaded))[0]
    reference = OnnxGenerator(reloaded.generator_onnx)(x)
    assert np.abs(served(x) - reference).mean() < 0.02  # of the -1..1 range


def test_an_int8_generator_that_loses_too_much_changes_nothing(bundle, monkeypatch):
    before = (bundle / "manifest.json").read_text()
    monkeypatch.setattr(quantize, "MAX_PSNR_LOSS_DB", -1.0)  # demand a gain: impossible
    real = quantize.calibration_inputs
    monkeypatch.setattr(quantize, "calibration_inputs", lambda a, r: real(a, r)[:8])
    with pytest.raises(AvatarError, match="loses too much.*keeps serving in FP32"):
        quantize.quantize_generator(Avatar.load(bundle))
    assert (bundle / "manifest.json").read_text() == before
    assert not (bundle / quantize.GENERATOR_INT8).exists()
    assert not list(bundle.glob("*.partial"))


def _renderer(avatar):
    from engine.avatar.render import FaceRenderer

    return FaceRenderer(avatar)
