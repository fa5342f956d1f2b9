"""``evp export verify``: exported networks against the PyTorch checkpoint, with tolerances.

The ONNX files run under ONNX Runtime (``verify_onnx``) or as TensorRT engines
(``verify_tensorrt``, on a GPU with TensorRT). Each network is run at several batch sizes
(and clip lengths for the emotion encoder) on the same inputs as PyTorch, and the largest
absolute difference is compared with its tolerance. The landmark decoder is also run step
by step over a whole sequence, carrying (h, c) through the runtime, against PyTorch's
whole-sequence LSTM: the error a live session would see after many frames. With an avatar,
its generator is compared too, by PSNR of the images.
"""

from pathlib import Path

import numpy as np
import torch

from engine.model.checkpoint import Checkpoint
from trt_build.onnx_export import example_inputs

# Per network, max abs error. FP16 engines get a looser per-network bound; the landmark
# sequence (what users see, in frontal units: outer-eye distance = 1) keeps 1e-3 for both.
TOLERANCE = {"fp32": 1e-4, "fp16": 1e-2}
SEQUENCE_TOLERANCE = 1e-3
GENERATOR_MIN_PSNR = 40.0  # dB between the backends' images


def verify_onnx(checkpoint: Checkpoint, checkpoint_path: Path, directory: Path) -> dict:
    from engine.runtime.landmarks import OnnxLandmarks

    return verify_runtime(checkpoint, OnnxLandmarks(directory, checkpoint_path), "fp32")


def verify_tensorrt(
    checkpoint: Checkpoint, checkpoint_path: Path, directory: Path, engines_dir: Path
) -> dict:
    from engine.runtime.tensorrt import TensorRTLandmarks

    runtime = TensorRTLandmarks(directory, checkpoint_path, engines_dir)
    return verify_runtime(checkpoint, runtime, runtime.precision)


def verify_runtime(checkpoint: Checkpoint, runtime, precision: str) -> dict:
    """``runtime``: an engine.runtime.landmarks.ExportedLandmarks of ``checkpoint``."""
    model = checkpoint.model.eval()
    tolerance = TOLERANCE[precision]
    results: dict = {"backend": runtime.name, "precision": precision}
    for name in runtime.spec["models"]:
        worst = 0.0
        for batch, hops in ((1, 30), (7, 100), (64, 300)):
            module, inputs, _, _ = example_inputs(model, batch=batch, hops=hops)[name]
            with torch.no_grad():
                expected = module(*inputs.values())
            expected = expected if isinstance(expected, tuple) else (expected,)
            got = runtime.run(name, **{k: v.numpy() for k, v in inputs.items()})
            for e, g in zip(expected, got, strict=True):
                worst = max(worst, float(np.abs(e.numpy() - g).max()))
        results[name] = _verdict(worst, tolerance)
    results["landmark_sequence"] = {"frames": 250} | _sequence(model, runtime, 250)
    results["ok"] = all(r["ok"] for r in results.values() if isinstance(r, dict))
    return results


def verify_generator(avatar, generator) -> dict:
    """An avatar's generator on a runtime against PyTorch on the CPU, on its own samples."""
    from engine.avatar.render import FaceRenderer
    from engine.avatar.samples import generator_input, to_image
    from engine.runtime.generator import TorchGenerator

    reference = TorchGenerator(avatar.generator_weights, "cpu")
    renderer = FaceRenderer(avatar, reference)
    picks = np.linspace(0, len(avatar.frames) - 1, 8).astype(int)
    x = np.stack([generator_input(renderer.sample(i, avatar.track.landmarks[i])) for i in picks])
    expected, got = reference(x), generator(x)
    images = [np.stack([to_image(o) for o in out]).astype(np.float64) for out in (expected, got)]
    mse = float(np.mean((images[0] - images[1]) ** 2))  # on the uint8 RGB users see
    psnr = float("inf") if mse == 0 else 10 * np.log10(255.0**2 / mse)
    return {
        "backend": generator.name,
        "psnr_db": round(psnr, 2),
        "max_abs_error": float(np.abs(expected - got).max()),  # raw outputs, -1..1
        "min_psnr_db": GENERATOR_MIN_PSNR,
        "ok": bool(psnr >= GENERATOR_MIN_PSNR),
    }


def _verdict(error: float, tolerance: float) -> dict:
    return {"max_abs_error": error, "tolerance": tolerance, "ok": bool(error <= tolerance)}


def _sequence(model, runtime, frames: int) -> dict:
    """Step the runtime's decoder through a 10 s sequence; compare with PyTorch on all of it."""
    config = model.config
    g = torch.Generator().manual_seed(1)
    content = torch.randn(1, frames, config.content_dim, generator=g)
    emotion = torch.randn(1, config.emotion_dim, generator=g)[:, None].expand(1, frames, -1)
    identity = torch.randn(1, config.identity_dim, generator=g)
    with torch.no_grad():
        expected, _ = model.landmarks(content, emotion, identity)
    h = np.zeros((config.lstm_layers, 1, config.hidden), np.float32)
    c = np.zeros_like(h)
    worst = 0.0
    for t in range(frames):
        displacement, h, c = runtime.step(
            content[:, t].numpy(), emotion[:, t].numpy(), identity.numpy(), h, c
        )
        worst = max(worst, float(np.abs(displacement - expected[:, t].numpy()).max()))
    return _verdict(worst, SEQUENCE_TOLERANCE)
