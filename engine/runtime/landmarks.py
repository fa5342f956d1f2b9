"""The audio-to-landmark networks behind one interface, on PyTorch or ONNX Runtime.

    runtime = load_landmark_runtime("auto")   # engine.runtime.loading: ONNX Runtime on a CPU
    content = runtime.content(windows)                 # (N, 28, 12) -> (N, C)
    emotion = runtime.emotion(hops)                    # (N, H, 15) -> (N, E)
    identity = runtime.identity(neutral)               # (N, 68, 2) -> (N, I)
    logits = runtime.classify(codes)                   # (N, E) -> (N, 8), EMOTIONS order
    displacement, h, c = runtime.step(content, emotion, identity, h, c)
                                                       # one frame; h, c: (L, N, D)

All arrays are float32 numpy; N is any batch (sessions), so one call serves many sessions
and each session's (h, c) is a slice along N. ONNX Runtime reads the files of
``evp export onnx`` (shipped next to the default weights, checked against them); PyTorch
runs the checkpoint itself, on CUDA when asked and available.
"""

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from engine.errors import EngineError
from engine.runtime.backends import BackendUnavailable, torch_on
from engine.runtime.onnx import cpu_session

if TYPE_CHECKING:
    from engine.runtime.cuda_graphs import Outputs

WEIGHTS = Path(__file__).resolve().parents[1] / "model" / "weights"
SHIPPED_ONNX = WEIGHTS / "onnx"
SHIPPED_CHECKPOINT = WEIGHTS / "evp-a2l.safetensors"
NETWORKS = ("content", "emotion", "identity", "classifier", "landmark_step")


@dataclass(frozen=True)
class ShippedModel:
    """A landmark model shipped with the project: its checkpoint and its ONNX export."""

    name: str
    checkpoint: Path
    onnx_dir: Path
    summary: str


MODELS = {
    model.name: model
    for model in (
        ShippedModel(
            "evp", SHIPPED_CHECKPOINT, SHIPPED_ONNX, "EVP's MFCC window: 122.5 ms look-ahead"
        ),
        ShippedModel(
            "low-latency",
            WEIGHTS / "evp-a2l-lowlatency.safetensors",
            WEIGHTS / "onnx-lowlatency",
            "4 hops of look-ahead: 42.5 ms; lips follow at r 0.41 against 0.49",
        ),
    )
}
DEFAULT_MODEL = "evp"


def shipped_model(name: str) -> ShippedModel:
    if name not in MODELS:
        raise EngineError(f"no model {name!r}: choose one of {', '.join(MODELS)}")
    return MODELS[name]


def checkpoint_digest(path: Path) -> str:
    """The first 16 hex digits of a checkpoint file's SHA-256: what an export came from."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()[:16]


class LandmarkRuntime(Protocol):
    name: str
    layers: int
    hidden: int
    emotion_means: np.ndarray  # (8, E) the emotion space's cluster means, EMOTIONS order
    emotion_counts: np.ndarray  # (8,) training utterances behind each; 0 = never seen
    emotion_temperature: float  # Ce's calibration temperature (1.0: uncalibrated)
    lookahead_hops: int  # the MFCC window placement it was trained with (engine.audio.mfcc)

    def content(self, windows: np.ndarray) -> np.ndarray: ...
    def emotion(self, hops: np.ndarray) -> np.ndarray: ...
    def identity(self, neutral: np.ndarray) -> np.ndarray: ...
    def classify(self, codes: np.ndarray) -> np.ndarray: ...
    def step(
        self,
        content: np.ndarray,
        emotion: np.ndarray,
        identity: np.ndarray,
        h: np.ndarray,
        c: np.ndarray,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]: ...


def read_export(directory: Path, checkpoint_path: Path | None = None) -> dict[str, Any]:
    """models.json of an ``evp export onnx`` directory, checked to be complete and
    exported from ``checkpoint_path`` (default: the shipped weights)."""
    rebuild = f"run `evp export onnx --out {directory}`"
    spec_path = directory / "models.json"
    if not spec_path.is_file():
        raise BackendUnavailable(f"no models.json in {directory}: {rebuild}")
    try:
        spec: dict[str, Any] = json.loads(spec_path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise BackendUnavailable(f"{spec_path} is damaged ({e}): {rebuild}") from e
    checkpoint_path = Path(checkpoint_path or SHIPPED_CHECKPOINT)
    if spec.get("digest") != checkpoint_digest(checkpoint_path):
        raise BackendUnavailable(
            f"the ONNX models in {directory} were exported from another checkpoint than "
            f"{checkpoint_path}: run `evp export onnx --checkpoint {checkpoint_path} "
            f"--out {directory}`"
        )
    missing = [name for name in NETWORKS if name not in spec.get("models", {})]
    missing += [key for key in ("emotion_space", "lookahead_hops") if key not in spec]
    if missing:
        raise BackendUnavailable(
            f"the ONNX export in {directory} lacks {', '.join(missing)} (an older export): "
            f"{rebuild}"
        )
    return spec


class ExportedLandmarks:
    """The networks of an ONNX export (``read_export``); subclasses run them by name."""

    name: str

    def __init__(self, directory: Path, checkpoint_path: Path | None = None) -> None:
        self.directory = directory
        self.spec = read_export(directory, checkpoint_path)
        space = self.spec["emotion_space"]
        self.emotion_means = np.asarray(space["means"], np.float32)
        self.emotion_counts = np.asarray(space["counts"], np.float32)
        self.emotion_temperature = float(space.get("temperature", 1.0))  # 1: uncalibrated
        self.lookahead_hops = int(self.spec["lookahead_hops"])
        state = self.spec["models"]["landmark_step"]["inputs"][3]["shape"]  # [L, "N", D]
        self.layers, self.hidden = int(state[0]), int(state[2])
        self.digest = self.spec["digest"]

    def run(self, name: str, **inputs: np.ndarray) -> list[np.ndarray]:
        """Network ``name`` of models.json on named float32 inputs -> its outputs."""
        raise NotImplementedError

    def content(self, windows: np.ndarray) -> np.ndarray:
        return self.run("content", window=windows)[0]

    def emotion(self, hops: np.ndarray) -> np.ndarray:
        return self.run("emotion", hops=hops)[0]

    def identity(self, neutral: np.ndarray) -> np.ndarray:
        return self.run("identity", neutral=neutral)[0]

    def classify(self, codes: np.ndarray) -> np.ndarray:
        return self.run("classifier", code=codes)[0]

    def step(
        self,
        content: np.ndarray,
        emotion: np.ndarray,
        identity: np.ndarray,
        h: np.ndarray,
        c: np.ndarray,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        displacement, h, c = self.run(
            "landmark_step", content=content, emotion=emotion, identity=identity, h=h, c=c
        )
        return displacement, h, c


class OnnxLandmarks(ExportedLandmarks):
    name = "onnx"

    def __init__(
        self,
        directory: Path = SHIPPED_ONNX,
        checkpoint_path: Path | None = None,
        threads: int | None = None,
    ) -> None:
        super().__init__(directory, checkpoint_path)
        rebuild = f"run `evp export onnx --out {directory}`"
        self._sessions = {
            name: cpu_session(directory / f"{name}.onnx", threads, rebuild) for name in NETWORKS
        }

    def run(self, name: str, **inputs: np.ndarray) -> list[np.ndarray]:
        feeds = {k: np.ascontiguousarray(v, dtype=np.float32) for k, v in inputs.items()}
        outputs: list[np.ndarray] = self._sessions[name].run(None, feeds)
        return outputs


class TorchLandmarks:
    name = "torch"
    # The networks run per tick: the checkpoint's modules, or on CUDA their graphs.
    _content: Callable[..., "Outputs"]
    _step: Callable[..., "Outputs"]

    def __init__(self, checkpoint_path: Path | None = None, device: str | None = None) -> None:
        self._torch, self.device = torch_on(device)  # first: it explains a missing torch
        from engine.model.checkpoint import load_checkpoint
        from engine.model.emotion_space import temperature
        from engine.model.networks import LandmarkStep
        from engine.runtime.cuda_graphs import GraphedModule

        checkpoint = load_checkpoint(checkpoint_path)
        model = checkpoint.model.eval().to(self.device)
        self._model, self._step = model, LandmarkStep(model).eval()
        self._content = model.content
        if self.device.type == "cuda":  # FP32 (parity); graphs for the per-tick networks
            self._content = GraphedModule(model.content, (0,), (0,), capture=True)
            self._step = GraphedModule(self._step, (0, 0, 0, 1, 1), (0, 1, 1), capture=True)
        self.emotion_means = checkpoint.means.numpy().astype(np.float32)
        self.emotion_counts = checkpoint.counts.numpy().astype(np.float32)
        self.emotion_temperature = temperature(checkpoint)
        self.lookahead_hops = checkpoint.config.lookahead_hops
        self.layers, self.hidden = model.config.lstm_layers, model.config.hidden

    def _run(self, module: Callable[..., "Outputs"], *arrays: np.ndarray) -> list[np.ndarray]:
        torch = self._torch
        with torch.no_grad():
            tensors = [
                torch.from_numpy(np.ascontiguousarray(a, np.float32)).to(self.device)
                for a in arrays
            ]
            out = module(*tensors)
        out = out if isinstance(out, tuple) else (out,)
        return [o.cpu().numpy() for o in out]

    def content(self, windows: np.ndarray) -> np.ndarray:
        return self._run(self._content, windows)[0]

    def emotion(self, hops: np.ndarray) -> np.ndarray:
        return self._run(self._model.emotion, hops)[0]

    def identity(self, neutral: np.ndarray) -> np.ndarray:
        return self._run(self._model.identity, neutral)[0]

    def classify(self, codes: np.ndarray) -> np.ndarray:
        return self._run(self._model.classifier, codes)[0]

    def step(
        self,
        content: np.ndarray,
        emotion: np.ndarray,
        identity: np.ndarray,
        h: np.ndarray,
        c: np.ndarray,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        displacement, h, c = self._run(self._step, content, emotion, identity, h, c)
        return displacement, h, c
