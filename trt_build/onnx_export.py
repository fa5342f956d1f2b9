"""ONNX export of the audio-to-landmark networks, with a dynamic batch axis.

One file per network, each with named inputs and outputs (shapes: N the batch, H hops,
L LSTM layers, D hidden size):

    content.onnx        window (N, 28, 12) MFCC            -> content (N, C)
    emotion.onnx        hops (N, H, 15) MFCC + prosody     -> emotion (N, E)
    identity.onnx       neutral (N, 68, 2) frontal          -> identity (N, I)
    classifier.onnx     code (N, E)                         -> logits (N, 8), EMOTIONS order
    landmark_step.onnx  content (N, C), emotion (N, E), identity (N, I),
                        h (L, N, D), c (L, N, D)           -> displacement (N, 68, 2),
                                                              h_out, c_out

``landmark_step`` is one LSTM step and the MLP of eq. 7, so the runtime keeps each
session's (h, c) and batches sessions by stacking them along N. ``export_onnx`` writes
the files and ``models.json`` (every input and output with its shape and dtype, the
emotion space's cluster means and counts, and the checkpoint's digest, so stale exports
are detected).
"""

import json
import warnings
from pathlib import Path

import torch

from engine.constants import MFCC_N_COEFFS, MFCC_WINDOW_FRAMES
from engine.model.checkpoint import Checkpoint
from engine.model.networks import AudioToLandmarks, LandmarkStep
from engine.runtime.landmarks import checkpoint_digest
from engine.runtime.onnx import io_spec

OPSET = 17
N_LANDMARKS = 68
SPEC_FILE = "models.json"


def example_inputs(model: AudioToLandmarks, batch: int = 2, hops: int = 100) -> dict:
    """name -> (module, {input name: example tensor}, output names, dynamic axes)."""
    config = model.config
    state = (config.lstm_layers, batch, config.hidden)
    g = torch.Generator().manual_seed(0)
    randn = lambda *shape: torch.randn(*shape, generator=g)
    hops_tensor = randn(batch, hops, MFCC_N_COEFFS + 3)
    hops_tensor[..., -1] = torch.rand(batch, hops, generator=g)  # voicing probability
    return {
        "content": (
            model.content,
            {"window": randn(batch, MFCC_WINDOW_FRAMES, MFCC_N_COEFFS)},
            ["content"],
            {"window": {0: "N"}, "content": {0: "N"}},
        ),
        "emotion": (
            model.emotion,
            {"hops": hops_tensor},
            ["emotion"],
            {"hops": {0: "N", 1: "H"}, "emotion": {0: "N"}},
        ),
        "identity": (
            model.identity,
            {"neutral": randn(batch, N_LANDMARKS, 2) * 0.3},
            ["identity"],
            {"neutral": {0: "N"}, "identity": {0: "N"}},
        ),
        "classifier": (
            model.classifier,
            {"code": randn(batch, config.emotion_dim)},
            ["logits"],
            {"code": {0: "N"}, "logits": {0: "N"}},
        ),
        "landmark_step": (
            LandmarkStep(model),
            {
                "content": randn(batch, config.content_dim),
                "emotion": randn(batch, config.emotion_dim),
                "identity": randn(batch, config.identity_dim),
                "h": randn(*state) * 0.1,
                "c": randn(*state) * 0.1,
            },
            ["displacement", "h_out", "c_out"],
            {
                "content": {0: "N"},
                "emotion": {0: "N"},
                "identity": {0: "N"},
                "h": {1: "N"},
                "c": {1: "N"},
                "displacement": {0: "N"},
                "h_out": {1: "N"},
                "c_out": {1: "N"},
            },
        ),
    }


def export_onnx(checkpoint: Checkpoint, checkpoint_path: Path, out_dir: Path) -> dict:
    """Write the five ONNX files and models.json into out_dir (atomically each)."""
    import onnx

    from engine.model.emotion_space import temperature

    model = checkpoint.model.eval()
    out_dir.mkdir(parents=True, exist_ok=True)
    spec: dict = {
        "opset": OPSET,
        "checkpoint": checkpoint_path.name,
        "digest": checkpoint_digest(checkpoint_path),
        "lookahead_hops": checkpoint.config.lookahead_hops,  # the MFCC window it was trained on
        "emotion_space": {
            "means": checkpoint.means.tolist(),
            "counts": checkpoint.counts.tolist(),
            "temperature": temperature(checkpoint),
        },
        "models": {},
    }
    for name, (module, inputs, outputs, axes) in example_inputs(model).items():
        path = out_dir / f"{name}.onnx"
        tmp = path.with_name(path.name + ".partial")
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")
            torch.onnx.export(
                module.eval(),
                tuple(inputs.values()),
                str(tmp),
                input_names=list(inputs),
                output_names=outputs,
                dynamic_axes=axes,
                opset_version=OPSET,
                dynamo=False,
            )
        onnx.checker.check_model(str(tmp))
        tmp.replace(path)
        spec["models"][name] = io_spec(path)
    tmp = out_dir / (SPEC_FILE + ".partial")
    tmp.write_text(json.dumps(spec, indent=2) + "\n")
    tmp.replace(out_dir / SPEC_FILE)
    return spec
