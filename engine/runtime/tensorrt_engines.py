"""Running TensorRT engines: loading one, its optimisation profile's shapes, and the cache
key in its file name (GPU compute capability, TensorRT version, the ONNX file's bytes).
trt_build/tensorrt_engine.py builds them; engine/runtime/tensorrt.py serves with them.

**Untested in this repository's CI**: TensorRT cannot be installed here. What does not
need TensorRT is tested: profile shapes, engine keys, and the I/O an engine must match.
"""

import hashlib
import json
import logging
import math
from pathlib import Path
from types import ModuleType

import numpy as np

from engine.errors import EngineError
from engine.runtime.backends import BackendUnavailable

logger = logging.getLogger(__name__)

MAX_BATCH = 64
#: (min, opt, max) for each symbolic dimension: N (or an avatar generator's "batch")
#: sessions, H emotion hops.
SYMBOLIC = {"N": (1, 16, MAX_BATCH), "batch": (1, 16, MAX_BATCH), "H": (25, 300, 1000)}


Shape = tuple[int, ...]


def profile_shapes(
    io: dict, symbolic: dict[str, tuple[int, int, int]] = SYMBOLIC
) -> dict[str, tuple[Shape, Shape, Shape]]:
    """models.json entry of one network -> {input: (min, opt, max) shape} for its profile."""
    shapes: dict[str, tuple[Shape, Shape, Shape]] = {}
    for value in io["inputs"]:
        triple: list[Shape] = []
        for which in range(3):
            dims: list[int] = []
            for dim in value["shape"]:
                if isinstance(dim, str):
                    if dim not in symbolic:
                        raise EngineError(f"input {value['name']} has an unknown axis {dim!r}")
                    dims.append(symbolic[dim][which])
                else:
                    dims.append(int(dim))
            triple.append(tuple(dims))
        shapes[value["name"]] = (triple[0], triple[1], triple[2])
    return shapes


def check_shape(name: str, shape: tuple, profile: tuple[tuple, tuple, tuple], engine: Path) -> None:
    """Refuse an input the engine's optimisation profile does not cover, saying why."""
    low, _, high = profile
    if len(shape) != len(low) or any(not lo <= d <= hi for d, lo, hi in zip(shape, low, high)):
        raise EngineError(
            f"input {name} of shape {tuple(shape)} is outside what {Path(engine).name} was built "
            f"for: from {tuple(low)} to {tuple(high)} (batch: sessions per call; H: emotion "
            f"hops, 10 ms each)"
        )


def precision_name(fp16: bool) -> str:
    return "fp16" if fp16 else "fp32"


def engine_key(
    onnx_path: Path, compute_capability: tuple[int, int], trt_version: str, fp16: bool
) -> str:
    """What an engine depends on: the ONNX bytes, the GPU generation, TensorRT, precision."""
    digest = hashlib.sha256(Path(onnx_path).read_bytes())
    digest.update(json.dumps([list(compute_capability), trt_version, fp16]).encode())
    sm = f"sm{compute_capability[0]}{compute_capability[1]}"
    return f"{sm}-trt{trt_version}-{precision_name(fp16)}-{digest.hexdigest()[:12]}"


def tensorrt_module() -> ModuleType:
    """The tensorrt module, or BackendUnavailable saying how to get it."""
    try:
        import tensorrt as trt
    except ImportError as e:
        raise BackendUnavailable(
            "TensorRT is not installed: on a machine with an NVIDIA GPU, `pip install "
            "tensorrt-cu12` (it downloads from NVIDIA), or use --backend torch or onnx"
        ) from e
    module: ModuleType = trt  # untyped (no stubs): Any to mypy
    return module


class TensorRTRunner:
    """One engine, loaded once: buffers allocated once at the maximum batch, one
    execution context for its single profile; ``run`` takes and returns numpy arrays.
    Engines that cannot be used here raise BackendUnavailable (so ``auto`` moves on)."""

    def __init__(self, path: Path, io: dict, rebuild: str = "run `evp export trt`") -> None:
        trt = tensorrt_module()
        import torch

        if not Path(path).is_file():
            raise BackendUnavailable(f"missing {path}: {rebuild}")
        runtime = trt.Runtime(trt.Logger(trt.Logger.WARNING))
        self.engine = runtime.deserialize_cuda_engine(Path(path).read_bytes())
        if self.engine is None:
            raise BackendUnavailable(
                f"{path} cannot be loaded (damaged, or built for another GPU or TensorRT "
                f"version): {rebuild}"
            )
        names = {self.engine.get_tensor_name(i) for i in range(self.engine.num_io_tensors)}
        expected = {v["name"] for v in io["inputs"] + io["outputs"]}
        if names != expected:
            raise BackendUnavailable(
                f"{path} has tensors {sorted(names)}, not the {sorted(expected)} of its ONNX "
                f"file: {rebuild}"
            )
        for name in sorted(names):
            if self.engine.get_tensor_dtype(name) != trt.float32:
                raise BackendUnavailable(f"{path}: tensor {name} is not float32: {rebuild}")
        self.context = self.engine.create_execution_context()
        if self.context is None:
            raise BackendUnavailable(f"{path}: no execution context (out of GPU memory?)")
        self.stream = torch.cuda.Stream()
        self._torch = torch
        shapes = profile_shapes(io)
        self.buffers = {}
        for value in io["inputs"] + io["outputs"]:
            name = value["name"]
            biggest = shapes.get(name, (None, None, None))[2] or self._max_output(value)
            self.buffers[name] = torch.empty(biggest, dtype=torch.float32, device="cuda")
        self.inputs = [v["name"] for v in io["inputs"]]
        self.outputs = [v["name"] for v in io["outputs"]]
        self.path, self._profiles = Path(path), shapes

    @staticmethod
    def _max_output(value: dict) -> tuple:
        return tuple(SYMBOLIC[d][2] if isinstance(d, str) else int(d) for d in value["shape"])

    def run(self, **arrays: np.ndarray) -> list[np.ndarray]:
        """Inputs by name (float32, batch within the profile) -> outputs in spec order.
        Copies, execution and read-back are all ordered on the runner's own stream."""
        torch = self._torch
        outputs = {}
        with torch.cuda.stream(self.stream):
            for name in self.inputs:
                check_shape(name, arrays[name].shape, self._profiles[name], self.path)
                array = torch.from_numpy(arrays[name])
                view = self.buffers[name].view(-1)[: array.numel()].view(array.shape)
                view.copy_(array, non_blocking=False)
                self.context.set_input_shape(name, tuple(array.shape))
                self.context.set_tensor_address(name, view.data_ptr())
            for name in self.outputs:
                shape = tuple(self.context.get_tensor_shape(name))
                view = self.buffers[name].view(-1)[: math.prod(shape)].view(shape)
                self.context.set_tensor_address(name, view.data_ptr())
                outputs[name] = view
            if not self.context.execute_async_v3(self.stream.cuda_stream):
                raise EngineError("TensorRT execution failed")
            result = [outputs[name].cpu().numpy() for name in self.outputs]
        self.stream.synchronize()
        return result
