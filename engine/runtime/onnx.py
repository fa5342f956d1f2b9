"""ONNX Runtime sessions on the CPU, set up once for every network."""

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from engine.errors import EngineError

if TYPE_CHECKING:
    from collections.abc import Iterable

    from onnx import ValueInfoProto
    from onnxruntime import InferenceSession


def default_threads() -> int:
    """Intra-op threads: the machine's cores, at most 4 (more only adds contention)."""
    return max(1, min(4, os.cpu_count() or 1))


def cpu_session(path: Path, threads: int | None = None, rebuild: str = "") -> "InferenceSession":
    """An ``onnxruntime.InferenceSession`` for ``path``; errors name the file and, when
    given, the command that rebuilds it."""
    try:
        import onnxruntime as ort
    except ImportError as e:
        raise EngineError("ONNX Runtime is not installed: pip install -e .") from e
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads or default_threads()
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    # Several sessions share the cores (landmark networks, generator, encoder threads):
    # idle pool threads must sleep, not spin, or each run steals the next one's cores.
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    hint = f": {rebuild}" if rebuild else ""
    if not Path(path).is_file():
        raise EngineError(f"missing {path}{hint}")
    try:
        return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    except Exception as e:  # onnxruntime raises untyped errors for damaged files
        raise EngineError(f"cannot load {path} ({e}){hint}") from e


def io_spec(path: Path) -> dict[str, list[dict[str, Any]]]:
    """{"inputs": [{name, shape, dtype}], "outputs": [...]} of an ONNX file; symbolic
    dimensions by name."""
    import onnx

    model = onnx.load(str(path), load_external_data=False)

    def describe(values: "Iterable[ValueInfoProto]") -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        for value in values:
            tensor = value.type.tensor_type
            shape = [d.dim_param or d.dim_value for d in tensor.shape.dim]
            out.append(
                {
                    "name": value.name,
                    "shape": shape,
                    "dtype": onnx.helper.tensor_dtype_to_np_dtype(tensor.elem_type).name,
                }
            )
        return out

    return {"inputs": describe(model.graph.input), "outputs": describe(model.graph.output)}
