"""An avatar's generator on ONNX Runtime or PyTorch: (N, 10, S, S) -> (N, 3, S, S).

Both read the avatar bundle: ``generator.onnx`` for ONNX Runtime (serving needs no torch),
``generator.safetensors`` for PyTorch (CPU or CUDA). ``load_generator_runtime`` picks
like engine.runtime.landmarks: ``auto`` is PyTorch on CUDA when a GPU is visible, else
ONNX Runtime.
"""

import logging
from pathlib import Path

import numpy as np

from engine.runtime.backends import check_backend, cuda_visible, torch_on
from engine.runtime.onnx import cpu_session, default_threads

logger = logging.getLogger(__name__)
REBUILD = "rebuild the avatar with `evp avatar build`"


class OnnxGenerator:
    name = "onnx"

    def __init__(self, path: Path, threads: int | None = None) -> None:
        self.threads = threads or default_threads()
        self._session = cpu_session(path, self.threads, REBUILD)
        (self._input,) = self._session.get_inputs()
        self.size = int(self._input.shape[-1])

    def __call__(self, guided: np.ndarray) -> np.ndarray:
        _check(guided, self.size)
        return self._session.run(None, {self._input.name: guided.astype(np.float32)})[0]


class TorchGenerator:
    name = "torch"

    def __init__(self, path: Path, device: str | None = None) -> None:
        self._torch, self.device = torch_on(device)  # first: it explains a missing torch
        from engine.avatar.generator import load_generator

        self._generator = load_generator(path).to(self.device)
        self.size = self._generator.config.size

    def __call__(self, guided: np.ndarray) -> np.ndarray:
        _check(guided, self.size)
        torch = self._torch
        with torch.no_grad():
            x = torch.from_numpy(np.ascontiguousarray(guided, np.float32)).to(self.device)
            return self._generator(x).cpu().numpy()


def _check(guided: np.ndarray, size: int) -> None:
    if guided.ndim != 4 or guided.shape[1:] != (10, size, size):
        raise ValueError(f"generator input must be (N, 10, {size}, {size}), got {guided.shape}")


def load_generator_runtime(avatar, backend: str = "auto", device: str | None = None):
    """The generator of a loaded engine.avatar.bundle.Avatar on the chosen backend."""
    if check_backend(backend) == "torch":
        return TorchGenerator(avatar.generator_weights, device)
    if backend == "auto" and cuda_visible():
        return TorchGenerator(avatar.generator_weights, "cuda")
    if backend == "auto":
        logger.info("backend auto: no GPU visible; the generator runs on ONNX Runtime")
    return OnnxGenerator(avatar.generator_onnx)
