"""The shipped landmark models: each loads with its own look-ahead and calibration, and a
model that is not shipped is refused with the names that are."""

import pytest

from engine.errors import EngineError
from engine.runtime.landmarks import MODELS, shipped_model
from engine.runtime.loading import load_landmark_runtime


@pytest.mark.parametrize(("name", "hops"), [("evp", 12), ("low-latency", 4)])
def test_each_shipped_model_loads_its_own_export(name, hops):
    runtime = load_landmark_runtime("onnx", model=name)
    assert runtime.lookahead_hops == hops
    assert 3.0 < runtime.emotion_temperature < 4.5  # calibrated (evp train calibrate)
    assert shipped_model(name).onnx_dir.is_dir() and shipped_model(name).checkpoint.is_file()


def test_an_unknown_model_names_the_shipped_ones():
    with pytest.raises(EngineError, match="choose one of evp, low-latency"):
        shipped_model("fast")
    assert list(MODELS) == ["evp", "low-latency"]
