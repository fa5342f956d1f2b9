"""An avatar's generator on ONNX Runtime or PyTorch: (N, 10, S, S) -> (N, 3, S, S).

Both read the avatar bundle: ``generator.onnx`` for ONNX Runtime (serving needs no torch),
``generator.safetensors`` for PyTorch (CPU or CUDA). ``load_generator_runtime`` picks
like engine.runtime.landmarks: ``auto`` is PyTorch on CUDA when a GPU is visible, else
ONNX Runtime.
"""

import logging
from pathlib import Path

import numpy as np

from engine.errors import EngineError
from engine.runtime.landmarks import BACKENDS, BackendUnavailable
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
        try:
            import torch
        except ImportError as e:
            raise BackendUnavailable(
                "the torch backend needs PyTorch: pip install -e '.[train]'"
            ) from e
        from engine.avatar.generator import load_generator

        if device == "cuda" and not torch.cuda.is_available():
            raise BackendUnavailable("the torch backend was asked for CUDA, but no GPU is visible")
        self._torch = torch
        self.device = torch.device(device or "cpu")
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
    if backend not in BACKENDS:
        raise EngineError(f"unknown backend {backend!r}; choose one of {', '.join(BACKENDS)}")
    if backend == "torch":
        return TorchGenerator(avatar.generator_weights, device)
    if backend == "auto":
        try:
            import torch

            if torch.cuda.is_available():
                return TorchGenerator(avatar.generator_weights, "cuda")
        except ImportError:
            pass
        logger.info("backend auto: the generator runs on ONNX Runtime on the CPU")
    return OnnxGenerator(avatar.generator_onnx)
