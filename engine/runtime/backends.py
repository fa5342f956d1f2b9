"""What every runtime shares: the backend names, their error, and PyTorch's device."""

from engine.errors import EngineError

BACKENDS = ("auto", "torch", "onnx")


class BackendUnavailable(EngineError):
    """A backend that was asked for but cannot run here."""


def check_backend(backend: str) -> str:
    if backend not in BACKENDS:
        raise EngineError(f"unknown backend {backend!r}; choose one of {', '.join(BACKENDS)}")
    return backend


def torch_on(device: str | None):
    """-> (the torch module, torch.device) for the torch backend, or BackendUnavailable."""
    try:
        import torch
    except ImportError as e:
        raise BackendUnavailable(
            "the torch backend needs PyTorch: pip install -e '.[train]'"
        ) from e
    if device is not None and device.startswith("cuda") and not torch.cuda.is_available():
        raise BackendUnavailable(f"the torch backend was asked for {device}, but no GPU is visible")
    return torch, torch.device(device or "cpu")


def cuda_visible() -> bool:
    """Whether `auto` should pick PyTorch on CUDA."""
    try:
        import torch
    except ImportError:
        return False
    return torch.cuda.is_available()
