"""An avatar's generator on ONNX Runtime or PyTorch: (N, 10, S, S) -> (N, 3, S, S).

All read the avatar bundle: ``generator.onnx`` for ONNX Runtime (serving needs no torch;
``generator.int8.onnx`` instead when the bundle has one, engine.avatar.quantize) and for
TensorRT engines (engine.runtime.tensorrt), ``generator.safetensors`` for
PyTorch (CPU, or CUDA in FP16 with CUDA graphs). ``engine.runtime.loading.load_generator_runtime`` picks like
engine.runtime.landmarks (engine.runtime.backends.choose).
"""

from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import numpy as np

from engine.runtime.backends import torch_on
from engine.runtime.onnx import cpu_session, default_threads

if TYPE_CHECKING:
    from engine.avatar.bundle import Avatar

REBUILD = "rebuild the avatar with `evp avatar build`"


class GeneratorRuntime(Protocol):
    """What every generator backend offers (engine.runtime.loading.load_generator_runtime)."""

    name: str
    size: int  # S: the square crop's side, pixels

    def __call__(self, guided: np.ndarray) -> np.ndarray: ...


class OnnxGenerator:
    concurrent = True  # ONNX Runtime's Run may be called from several threads at once

    def __init__(self, path: Path, threads: int | None = None, name: str = "onnx") -> None:
        """name: how logs and benchmarks call it ("onnx-int8" for a quantized model)."""
        self.threads = threads or default_threads()
        self.name = name
        self._session = cpu_session(path, self.threads, REBUILD)
        (self._input,) = self._session.get_inputs()
        self.size = int(self._input.shape[-1])

    def __call__(self, guided: np.ndarray) -> np.ndarray:
        check_input(guided, self.size)
        face: np.ndarray = self._session.run(None, {self._input.name: guided.astype(np.float32)})[0]
        return face


class TorchGenerator:
    """PyTorch; on CUDA in FP16 (``half``) with one CUDA graph per batch bucket."""

    name = "torch"

    def __init__(self, path: Path, device: str | None = None, half: bool | None = None) -> None:
        self._torch, self.device = torch_on(device)  # first: it explains a missing torch
        from engine.avatar.generator import load_generator
        from engine.runtime.cuda_graphs import GraphedModule

        on_gpu = self.device.type == "cuda"
        self.half = on_gpu if half is None else half
        generator = load_generator(path).to(self.device)
        self._dtype = self._torch.float16 if self.half else self._torch.float32
        self._generator = generator.to(self._dtype)
        self._run = GraphedModule(self._generator, (0,), (0,), capture=True) if on_gpu else None
        self.size = generator.config.size

    def __call__(self, guided: np.ndarray) -> np.ndarray:
        check_input(guided, self.size)
        torch = self._torch
        with torch.no_grad():
            x = torch.from_numpy(np.ascontiguousarray(guided, np.float32)).to(self.device)
            x = x.to(self._dtype)
            out = self._run(x)[0] if self._run else self._generator(x)
            face: np.ndarray = out.float().cpu().numpy()
            return face


def check_input(guided: np.ndarray, size: int) -> None:
    if guided.ndim != 4 or guided.shape[1:] != (10, size, size):
        raise ValueError(f"generator input must be (N, 10, {size}, {size}), got {guided.shape}")


def onnx_generator(avatar: "Avatar") -> OnnxGenerator:
    """The bundle's INT8 generator when it has one (engine.avatar.quantize), else FP32."""
    if avatar.generator_onnx_int8 is not None:
        return OnnxGenerator(avatar.generator_onnx_int8, name="onnx-int8")
    return OnnxGenerator(avatar.generator_onnx)
