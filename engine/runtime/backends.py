"""What every runtime shares: the backend names, their error, PyTorch's device, and the
``auto`` choice.

``auto`` tries, in order: TensorRT engines (a GPU, TensorRT and engines built for that GPU),
PyTorch on CUDA, then ONNX Runtime on the CPU. Each step it skips is logged with the
reason. A backend named explicitly never falls back: it works or raises
BackendUnavailable saying what is missing and how to get it.
"""

import logging
from collections.abc import Callable
from types import ModuleType
from typing import TYPE_CHECKING, TypeVar

from engine.errors import EngineError

if TYPE_CHECKING:
    import torch

logger = logging.getLogger(__name__)

BACKENDS = ("auto", "tensorrt", "torch", "onnx")
T = TypeVar("T")


class BackendUnavailable(EngineError):
    """A backend that was asked for but cannot run here."""


def check_backend(backend: str) -> str:
    if backend not in BACKENDS:
        raise EngineError(f"unknown backend {backend!r}; choose one of {', '.join(BACKENDS)}")
    return backend


def torch_on(device: str | None) -> tuple[ModuleType, "torch.device"]:
    """-> (the torch module, torch.device) for the torch backend, or BackendUnavailable.
    No device means CUDA when a GPU is visible, else the CPU."""
    try:
        import torch
    except ImportError as e:
        raise BackendUnavailable(
            "the torch backend needs PyTorch: pip install -e '.[train]'"
        ) from e
    if device is None:
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise BackendUnavailable(f"the torch backend was asked for {device}, but no GPU is visible")
    return torch, torch.device(device)


def cuda_visible() -> bool:
    """Whether `auto` should try the GPU backends."""
    try:
        import torch
    except ImportError:
        return False
    return torch.cuda.is_available()


def choose(backend: str, loaders: dict[str, Callable[[], T]], what: str) -> T:
    """Load ``what`` (e.g. "the generator") on ``backend``: one of ``loaders`` by name, or
    for ``auto`` the first of tensorrt, torch (GPU only) and onnx that loads."""
    if check_backend(backend) != "auto":
        return loaders[backend]()
    if cuda_visible():
        for name in ("tensorrt", "torch"):
            try:
                runtime = loaders[name]()
            except BackendUnavailable as e:
                logger.info("backend auto: %s cannot use %s: %s", what, name, e)
                continue
            logger.info("backend auto: %s on %s", what, name)
            return runtime
    else:
        logger.info("backend auto: no GPU visible; %s on ONNX Runtime", what)
    return loaders["onnx"]()
