"""Choosing where the networks run: each loader tries the backends in order
(engine.runtime.backends.choose) and returns the first that loads.

    runtime = load_landmark_runtime("auto", model="low-latency")
    generator = load_generator_runtime(avatar, "auto")

The one module that knows every implementation: the implementations know only their own
base classes, so the runtime has no import circles.
"""

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from engine.runtime.backends import choose
from engine.runtime.generator import GeneratorRuntime, TorchGenerator, onnx_generator
from engine.runtime.landmarks import (
    DEFAULT_MODEL,
    SHIPPED_ONNX,
    LandmarkRuntime,
    OnnxLandmarks,
    TorchLandmarks,
    shipped_model,
)
from engine.runtime.tensorrt import TensorRTGenerator, TensorRTLandmarks

if TYPE_CHECKING:
    from engine.avatar.bundle import Avatar


def load_landmark_runtime(
    backend: str = "auto",
    checkpoint_path: Path | None = None,
    onnx_dir: Path | None = None,
    device: str | None = None,
    engines_dir: Path | None = None,
    model: str = DEFAULT_MODEL,
) -> LandmarkRuntime:
    """The landmark networks on ``backend`` (engine.runtime.backends.choose): TensorRT
    engines built from ``onnx_dir``, the PyTorch checkpoint, or ONNX Runtime; both default
    to the shipped ``model``'s (MODELS)."""
    if checkpoint_path is None and onnx_dir is None:
        shipped = shipped_model(model)
        checkpoint_path, onnx_dir = shipped.checkpoint, shipped.onnx_dir
    elif onnx_dir is None:
        onnx_dir = SHIPPED_ONNX

    loaders: dict[str, Callable[[], LandmarkRuntime]] = {
        "tensorrt": lambda: TensorRTLandmarks(onnx_dir, checkpoint_path, engines_dir),
        "torch": lambda: TorchLandmarks(checkpoint_path, device),
        "onnx": lambda: OnnxLandmarks(onnx_dir, checkpoint_path),
    }
    return choose(backend, loaders, "the landmark networks")


def load_generator_runtime(
    avatar: "Avatar",
    backend: str = "auto",
    device: str | None = None,
    engines_dir: Path | None = None,
) -> GeneratorRuntime:
    """The generator of a loaded engine.avatar.bundle.Avatar on ``backend``
    (engine.runtime.backends.choose)."""
    loaders: dict[str, Callable[[], GeneratorRuntime]] = {
        "tensorrt": lambda: TensorRTGenerator(
            avatar.generator_onnx, engines_dir, avatar.manifest.name
        ),
        "torch": lambda: TorchGenerator(avatar.generator_weights, device),
        "onnx": lambda: onnx_generator(avatar),
    }
    return choose(backend, loaders, f"the generator of avatar {avatar.manifest.name}")
