"""``evp export verify``: the ONNX files under ONNX Runtime against the PyTorch checkpoint.

Each network is run at several batch sizes (and clip lengths for the emotion encoder) on
the same inputs in both, and the largest absolute difference is compared with its
tolerance. The landmark decoder is also run step by step over a whole sequence, carrying
(h, c) through ONNX Runtime, against PyTorch's whole-sequence LSTM: the error that a live
session would see after many frames.
"""

import json
from pathlib import Path

import numpy as np
import torch

from engine.errors import EngineError
from engine.model.checkpoint import Checkpoint
from engine.runtime.landmarks import checkpoint_digest
from trt_build.onnx_export import SPEC_FILE, example_inputs

TOLERANCE = {
    "content": 1e-4, "emotion": 1e-4, "identity": 1e-4, "classifier": 1e-4, "landmark_step": 1e-4,
}  # fmt: skip
SEQUENCE_TOLERANCE = 1e-3  # landmarks, frontal units (outer-eye distance = 1)


def _session(path: Path):
    import onnxruntime as ort

    if not path.is_file():
        raise EngineError(f"missing {path}: run `evp export onnx --out {path.parent}`")
    options = ort.SessionOptions()
    options.intra_op_num_threads = 2
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def verify_onnx(checkpoint: Checkpoint, checkpoint_path: Path, directory: Path) -> dict:
    spec_path = directory / SPEC_FILE
    if not spec_path.is_file():
        raise EngineError(f"no {SPEC_FILE} in {directory}: run `evp export onnx --out {directory}`")
    spec = json.loads(spec_path.read_text())
    if spec.get("digest") != checkpoint_digest(checkpoint_path):
        raise EngineError(
            f"{directory} was exported from another checkpoint ({spec.get('checkpoint')}); "
            f"run `evp export onnx --out {directory}` again"
        )
    model = checkpoint.model.eval()
    results = {}
    for name, tolerance in TOLERANCE.items():
        session = _session(directory / f"{name}.onnx")
        worst = 0.0
        for batch, hops in ((1, 30), (7, 100), (64, 300)):
            module, inputs, _, _ = example_inputs(model, batch=batch, hops=hops)[name]
            with torch.no_grad():
                expected = module(*inputs.values())
            expected = expected if isinstance(expected, tuple) else (expected,)
            got = session.run(None, {k: v.numpy() for k, v in inputs.items()})
            for e, g in zip(expected, got, strict=True):
                worst = max(worst, float(np.abs(e.numpy() - g).max()))
        results[name] = {"max_abs_error": worst, "tolerance": tolerance, "ok": worst <= tolerance}
    results["landmark_sequence"] = _sequence(model, directory)
    results["ok"] = all(r["ok"] for r in results.values() if isinstance(r, dict))
    return results


def _sequence(model, directory: Path, frames: int = 250) -> dict:
    """Step the ONNX decoder through a 10 s sequence; compare with PyTorch on all of it."""
    config = model.config
    g = torch.Generator().manual_seed(1)
    content = torch.randn(1, frames, config.content_dim, generator=g)
    emotion = torch.randn(1, config.emotion_dim, generator=g)[:, None].expand(1, frames, -1)
    identity = torch.randn(1, config.identity_dim, generator=g)
    with torch.no_grad():
        expected, _ = model.landmarks(content, emotion, identity)
    session = _session(directory / "landmark_step.onnx")
    h = np.zeros((config.lstm_layers, 1, config.hidden), np.float32)
    c = np.zeros_like(h)
    worst = 0.0
    for t in range(frames):
        displacement, h, c = session.run(
            None,
            {
                "content": content[:, t].numpy(),
                "emotion": emotion[:, t].numpy(),
                "identity": identity.numpy(),
                "h": h,
                "c": c,
            },
        )
        worst = max(worst, float(np.abs(displacement - expected[:, t].numpy()).max()))
    return {
        "frames": frames,
        "max_abs_error": worst,
        "tolerance": SEQUENCE_TOLERANCE,
        "ok": worst <= SEQUENCE_TOLERANCE,
    }
