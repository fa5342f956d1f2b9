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

import logging
import os
import tempfile
from pathlib import Path

from engine.errors import EngineError
from engine.runtime.tensorrt_engines import engine_key, profile_shapes, tensorrt_module

logger = logging.getLogger(__name__)

WORKSPACE_BYTES = 1 << 30


def _write_atomic(path: Path, data: bytes) -> None:
    """Write via a unique temporary file in the same directory, then rename."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name + ".", suffix=".partial")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def build_engine(onnx_path: Path, out_dir: Path, io: dict, fp16: bool = True) -> Path:
    """Parse ``onnx_path``, build a serialized engine with one optimisation profile for
    batch 1..MAX_BATCH (FP16 if asked and the GPU has fast FP16), reuse and update the
    timing cache of this GPU and TensorRT in out_dir, and write ``<name>.<key>.engine``
    atomically. Returns its path."""
    trt = tensorrt_module()
    import torch

    if not torch.cuda.is_available():
        raise EngineError("building TensorRT engines needs an NVIDIA GPU; none is visible")
    capability = torch.cuda.get_device_capability()
    trt_logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(trt_logger)
    fp16 = fp16 and builder.platform_has_fast_fp16
    key = engine_key(onnx_path, capability, trt.__version__, fp16)
    path = out_dir / f"{Path(onnx_path).stem}.{key}.engine"
    if path.is_file():
        return path
    network = builder.create_network(0)  # TensorRT 10: explicit batch always
    parser = trt.OnnxParser(network, trt_logger)
    if not parser.parse(Path(onnx_path).read_bytes()):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise EngineError(f"TensorRT cannot parse {onnx_path} (unsupported layer?): {errors}")
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, WORKSPACE_BYTES)
    if fp16:
        config.set_flag(trt.BuilderFlag.FP16)
    profile = builder.create_optimization_profile()
    for name, (low, opt, high) in profile_shapes(io).items():
        profile.set_shape(name, low, opt, high)
    config.add_optimization_profile(profile)
    sm = f"sm{capability[0]}{capability[1]}"
    cache_path = out_dir / f"timing.{sm}-trt{trt.__version__}.cache"
    cache = config.create_timing_cache(cache_path.read_bytes() if cache_path.is_file() else b"")
    if not config.set_timing_cache(cache, ignore_mismatch=False):
        logger.warning("%s does not match this GPU or TensorRT; starting a new one", cache_path)
        config.set_timing_cache(config.create_timing_cache(b""), ignore_mismatch=False)
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise EngineError(f"TensorRT failed to build an engine from {onnx_path}; see its log above")
    out_dir.mkdir(parents=True, exist_ok=True)
    _write_atomic(path, bytes(serialized))
    _write_atomic(cache_path, bytes(config.get_timing_cache().serialize()))
    for i in range(network.num_inputs):
        tensor = network.get_input(i)
        logger.info("%s: input %s %s %s", path.name, tensor.name, tensor.shape, tensor.dtype)
    for i in range(network.num_outputs):
        tensor = network.get_output(i)
        logger.info("%s: output %s %s %s", path.name, tensor.name, tensor.shape, tensor.dtype)
    return path
