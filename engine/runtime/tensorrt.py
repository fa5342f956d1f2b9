"""TensorRT engines behind the runtime interfaces (``--backend tensorrt``).

**Untested in this repository's CI**: TensorRT cannot be installed here. What runs without
it is tested (engine lookup and its errors; trt_build's profiles and keys).

Engines come from ``evp export trt`` and live in one cache directory (``EVP_TRT_DIR``,
default ``~/.cache/evp/trt``) as ``<network>.<key>.engine``; the key
(engine.runtime.tensorrt_engines.engine_key) depends on the ONNX file's bytes, the GPU's
compute capability, the TensorRT version and the precision, so engines of several models,
avatars and GPUs can share the directory and a stale one is never loaded.

    evp export trt                          # the landmark networks of the shipped model
    evp export trt --avatar NAME            # and an avatar's generator
"""

import os
from pathlib import Path
from types import ModuleType

import numpy as np

from engine.runtime.backends import BackendUnavailable, cuda_visible
from engine.runtime.landmarks import NETWORKS, SHIPPED_ONNX, ExportedLandmarks


def default_engines_dir() -> Path:
    return Path(os.environ.get("EVP_TRT_DIR") or Path.home() / ".cache" / "evp" / "trt")


def _require_tensorrt() -> tuple[ModuleType, tuple[int, int]]:
    """-> (tensorrt module, GPU compute capability) or BackendUnavailable."""
    from engine.runtime.tensorrt_engines import tensorrt_module

    trt = tensorrt_module()
    if not cuda_visible():
        raise BackendUnavailable("TensorRT needs an NVIDIA GPU; none is visible")
    import torch

    return trt, torch.cuda.get_device_capability()


def find_engine(
    onnx_path: Path,
    engines_dir: Path,
    capability: tuple[int, int],
    trt_version: str,
    rebuild: str,
) -> tuple[Path, str]:
    """(engine file, "fp16" or "fp32") built from ``onnx_path`` for this GPU and
    TensorRT; FP16 is preferred when both exist."""
    from engine.runtime.tensorrt_engines import engine_key, precision_name

    if not Path(onnx_path).is_file():
        raise BackendUnavailable(f"missing {onnx_path}: {rebuild}")
    for fp16 in (True, False):
        key = engine_key(onnx_path, capability, trt_version, fp16)
        path = engines_dir / f"{Path(onnx_path).stem}.{key}.engine"
        if path.is_file():
            return path, precision_name(fp16)
    others = sorted(p.name for p in engines_dir.glob(f"{Path(onnx_path).stem}.*.engine"))
    found = (
        f"; {engines_dir} has {', '.join(others)}, built for another GPU, TensorRT version or model"
        if others
        else ""
    )
    sm = f"sm{capability[0]}{capability[1]}"
    raise BackendUnavailable(
        f"no TensorRT engine of {onnx_path} for this GPU ({sm}) and TensorRT {trt_version} in "
        f"{engines_dir}{found}: {rebuild}"
    )


class TensorRTLandmarks(ExportedLandmarks):
    name = "tensorrt"

    def __init__(
        self,
        directory: Path = SHIPPED_ONNX,
        checkpoint_path: Path | None = None,
        engines_dir: Path | None = None,
    ) -> None:
        trt, capability = _require_tensorrt()
        super().__init__(directory, checkpoint_path)
        from engine.runtime.tensorrt_engines import TensorRTRunner

        engines_dir = engines_dir or default_engines_dir()
        rebuild = f"run `evp export trt --dir {directory} --out {engines_dir}`"
        self._runners, precisions = {}, set()
        for name in NETWORKS:
            onnx_path = directory / f"{name}.onnx"
            path, precision = find_engine(
                onnx_path, engines_dir, capability, trt.__version__, rebuild
            )
            self._runners[name] = TensorRTRunner(path, self.spec["models"][name], rebuild)
            precisions.add(precision)
        self.precision = "fp16" if "fp16" in precisions else "fp32"

    def run(self, name: str, **inputs: np.ndarray) -> list[np.ndarray]:
        feeds = {k: np.ascontiguousarray(v, dtype=np.float32) for k, v in inputs.items()}
        return self._runners[name].run(**feeds)


class TensorRTGenerator:
    name = "tensorrt"

    def __init__(
        self, onnx_path: Path, engines_dir: Path | None = None, avatar: str = "NAME"
    ) -> None:
        trt, capability = _require_tensorrt()
        from engine.runtime.onnx import io_spec
        from engine.runtime.tensorrt_engines import TensorRTRunner

        engines_dir = engines_dir or default_engines_dir()
        rebuild = f"run `evp export trt --avatar {avatar} --out {engines_dir}`"
        path, self.precision = find_engine(
            onnx_path, engines_dir, capability, trt.__version__, rebuild
        )
        io = io_spec(onnx_path)
        self._input = io["inputs"][0]["name"]
        self.size = int(io["inputs"][0]["shape"][-1])
        self._runner = TensorRTRunner(path, io, rebuild)

    def __call__(self, guided: np.ndarray) -> np.ndarray:
        from engine.runtime.generator import check_input

        check_input(guided, self.size)
        return self._runner.run(**{self._input: np.ascontiguousarray(guided, np.float32)})[0]
