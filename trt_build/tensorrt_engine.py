"""TensorRT engines from the exported ONNX files (TensorRT 10 Python API).

**Untested in this repository's CI**: TensorRT cannot be installed here (its wheels fetch
the libraries from NVIDIA's servers). What does not need TensorRT is tested: optimisation
profile shapes, engine cache keys, and the I/O spec an engine must match. To build and
verify on a machine with an NVIDIA GPU and TensorRT 10:

    pip install tensorrt-cu12            # from NVIDIA's index
    evp export onnx --out build/onnx
    evp export trt --dir build/onnx --out build/trt
    evp export verify --dir build/onnx --trt build/trt
    evp export trt --avatar default --out build/trt     # an avatar's generator
    evp export verify --trt build/trt --avatar default

Engines are specific to the GPU's compute capability and the TensorRT version, so each
file's name carries a key of both (``engine_key``); a mismatch is refused with the
command that rebuilds it.
"""

import hashlib
import json
import logging
import math
from pathlib import Path

import numpy as np

from engine.errors import EngineError

logger = logging.getLogger(__name__)

MAX_BATCH = 64
#: (min, opt, max) for each symbolic dimension: N (or an avatar generator's "batch")
#: sessions, H emotion hops.
SYMBOLIC = {"N": (1, 16, MAX_BATCH), "batch": (1, 16, MAX_BATCH), "H": (25, 300, 1000)}
WORKSPACE_BYTES = 1 << 30


def profile_shapes(io: dict, symbolic: dict = SYMBOLIC) -> dict[str, tuple[tuple, tuple, tuple]]:
    """models.json entry of one network -> {input: (min, opt, max) shape} for its profile."""
    shapes = {}
    for value in io["inputs"]:
        triple = []
        for which in range(3):
            dims = []
            for dim in value["shape"]:
                if isinstance(dim, str):
                    if dim not in symbolic:
                        raise EngineError(f"input {value['name']} has an unknown axis {dim!r}")
                    dims.append(symbolic[dim][which])
                else:
                    dims.append(int(dim))
            triple.append(tuple(dims))
        shapes[value["name"]] = tuple(triple)
    return shapes


def check_shape(name: str, shape: tuple, profile: tuple[tuple, tuple, tuple], engine: Path) -> None:
    """Refuse an input the engine's optimisation profile does not cover, saying why."""
    low, _, high = profile
    if len(shape) != len(low) or any(not lo <= d <= hi for d, lo, hi in zip(shape, low, high)):
        raise EngineError(
            f"input {name} of shape {tuple(shape)} is outside what {Path(engine).name} was built "
            f"for ({tuple(low)} to {tuple(high)}); at most {MAX_BATCH} sessions per call"
        )


def engine_key(
    onnx_path: Path, compute_capability: tuple[int, int], trt_version: str, fp16: bool
) -> str:
    """What an engine depends on: the ONNX bytes, the GPU generation, TensorRT, precision."""
    digest = hashlib.sha256(Path(onnx_path).read_bytes())
    digest.update(json.dumps([list(compute_capability), trt_version, fp16]).encode())
    return f"sm{compute_capability[0]}{compute_capability[1]}-trt{trt_version}-{digest.hexdigest()[:12]}"


def _tensorrt():
    try:
        import tensorrt as trt
    except ImportError as e:
        raise EngineError(
            "TensorRT is not installed: on a machine with an NVIDIA GPU, `pip install "
            "tensorrt-cu12` (it downloads from NVIDIA), or use --backend torch or onnx"
        ) from e
    return trt


def build_engine(onnx_path: Path, out_dir: Path, io: dict, fp16: bool = True) -> Path:
    """Parse ``onnx_path``, build a serialized engine with one optimisation profile for
    batch 1..MAX_BATCH (FP16 where the GPU has fast FP16), reuse and update the timing
    cache in out_dir, and write ``<name>.<key>.engine`` atomically. Returns its path."""
    trt = _tensorrt()
    import torch

    if not torch.cuda.is_available():
        raise EngineError("building TensorRT engines needs an NVIDIA GPU; none is visible")
    capability = torch.cuda.get_device_capability()
    key = engine_key(onnx_path, capability, trt.__version__, fp16)
    path = out_dir / f"{Path(onnx_path).stem}.{key}.engine"
    if path.is_file():
        return path
    trt_logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(trt_logger)
    network = builder.create_network(0)  # TensorRT 10: explicit batch always
    parser = trt.OnnxParser(network, trt_logger)
    if not parser.parse(Path(onnx_path).read_bytes()):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise EngineError(f"TensorRT cannot parse {onnx_path} (unsupported layer?): {errors}")
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, WORKSPACE_BYTES)
    if fp16 and builder.platform_has_fast_fp16:
        config.set_flag(trt.BuilderFlag.FP16)
    profile = builder.create_optimization_profile()
    for name, (low, opt, high) in profile_shapes(io).items():
        profile.set_shape(name, low, opt, high)
    config.add_optimization_profile(profile)
    cache_path = out_dir / "timing.cache"
    cache = config.create_timing_cache(cache_path.read_bytes() if cache_path.is_file() else b"")
    config.set_timing_cache(cache, ignore_mismatch=False)
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise EngineError(f"TensorRT failed to build an engine from {onnx_path}; see its log above")
    out_dir.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".partial")
    tmp.write_bytes(bytes(serialized))
    tmp.replace(path)
    cache_tmp = cache_path.with_name(cache_path.name + ".partial")
    cache_tmp.write_bytes(bytes(config.get_timing_cache().serialize()))
    cache_tmp.replace(cache_path)
    for i in range(network.num_inputs):
        tensor = network.get_input(i)
        logger.info("%s: input %s %s %s", path.name, tensor.name, tensor.shape, tensor.dtype)
    for i in range(network.num_outputs):
        tensor = network.get_output(i)
        logger.info("%s: output %s %s %s", path.name, tensor.name, tensor.shape, tensor.dtype)
    return path


class TensorRTRunner:
    """One engine, loaded once: buffers allocated once at the maximum batch, one
    execution context for its single profile; ``run`` takes and returns numpy arrays."""

    def __init__(self, path: Path, io: dict) -> None:
        trt = _tensorrt()
        import torch

        if not Path(path).is_file():
            raise EngineError(f"missing {path}: run `evp export trt`")
        runtime = trt.Runtime(trt.Logger(trt.Logger.WARNING))
        self.engine = runtime.deserialize_cuda_engine(Path(path).read_bytes())
        if self.engine is None:
            raise EngineError(
                f"{path} was built for another GPU or TensorRT version: run `evp export trt` again"
            )
        self.context = self.engine.create_execution_context()
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
