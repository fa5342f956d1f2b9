"""An INT8 generator for ONNX Runtime on the CPU, calibrated on the avatar's own frames.

    report = quantize_generator(avatar)     # writes generator.int8.onnx into the bundle

Static QDQ quantization (ONNX Runtime's ``quantize_static``): weights INT8 per output
channel, activations UINT8 with ranges from the avatar's own training frames (each drawn
from its tracked landmarks, as the generator learnt them). The first convolution (the
guidance and masked frame come in) and the last (RGB goes out) stay FP32: quantizing them
cost SSIM 0.010 on the default avatar for about 14 % more speed.

The INT8 model is kept only if, on the held-out frames, it is within ``MAX_SSIM_LOSS`` and
``MAX_PSNR_LOSS_DB`` of the FP32 one (crop and full frame); otherwise nothing in the
bundle changes and AvatarError says by how much it missed. The manifest then lists it
(``generator.onnx_int8``) with its own validation, and ONNX Runtime serving uses it.
"""

import logging
import tempfile
from dataclasses import replace
from pathlib import Path

import numpy as np

from engine.avatar.bundle import Avatar
from engine.avatar.render import FaceRenderer
from engine.avatar.samples import generator_input
from engine.errors import AvatarError

logger = logging.getLogger(__name__)

GENERATOR_INT8 = "generator.int8.onnx"
MAX_SSIM_LOSS = 0.01  # the avatar's held-out SSIM (crop and full frame) may drop this much
MAX_PSNR_LOSS_DB = 0.5


def calibration_inputs(avatar: Avatar, renderer: FaceRenderer) -> list[np.ndarray]:
    """(1, 10, S, S) float32 generator inputs of every loop frame not held out."""
    held = set(avatar.manifest.held_out)
    return [
        generator_input(renderer.sample(i, avatar.track.landmarks[i]))[None]
        for i in range(avatar.frames.shape[0])
        if i not in held
    ]


def _quantize(source: Path, target: Path, inputs: list[np.ndarray]) -> None:
    import onnx
    from onnxruntime.quantization import (
        CalibrationDataReader,
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )
    from onnxruntime.quantization.shape_inference import quant_pre_process

    class Frames(CalibrationDataReader):
        def __init__(self) -> None:
            self._inputs = iter(inputs)

        def get_next(self) -> dict | None:
            x = next(self._inputs, None)
            return None if x is None else {"guided": x}

    with tempfile.TemporaryDirectory() as work:
        prepared = Path(work) / "prepared.onnx"
        quant_pre_process(str(source), str(prepared), skip_symbolic_shape=True)
        convs = [n.name for n in onnx.load(str(prepared)).graph.node if n.op_type == "Conv"]
        quantize_static(
            str(prepared),
            str(target),
            Frames(),
            quant_format=QuantFormat.QDQ,
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
            per_channel=True,
            calibrate_method=CalibrationMethod.MinMax,
            nodes_to_exclude=[convs[0], convs[-1]],
        )


def _losses(fp32: dict, int8: dict) -> list[str]:
    """What the INT8 model loses beyond the limits, in words (empty: within them)."""
    missed = []
    for key in ("ssim", "full_ssim"):
        if fp32[key] - int8[key] > MAX_SSIM_LOSS:
            missed.append(f"{key} {fp32[key]:.4f} -> {int8[key]:.4f}")
    for key in ("psnr", "full_psnr"):
        if fp32[key] - int8[key] > MAX_PSNR_LOSS_DB:
            missed.append(f"{key} {fp32[key]:.2f} -> {int8[key]:.2f} dB")
    return missed


def quantize_generator(avatar: Avatar) -> dict:
    """Write ``generator.int8.onnx`` into the avatar's bundle and list it in the manifest;
    returns {"fp32": validation, "int8": validation}. Raises AvatarError, changing
    nothing, if the INT8 model loses more than the limits on the held-out frames."""
    from engine.evaluation.avatar import evaluate_avatar
    from engine.runtime.generator import OnnxGenerator

    directory = avatar.directory
    fp32_renderer = FaceRenderer(avatar, OnnxGenerator(avatar.generator_onnx))
    inputs = calibration_inputs(avatar, fp32_renderer)
    if not inputs:
        raise AvatarError(f"avatar {avatar.manifest.name!r} has no frames to calibrate on")
    partial = directory / (GENERATOR_INT8 + ".partial")
    try:
        _quantize(avatar.generator_onnx, partial, inputs)
        fp32 = evaluate_avatar(avatar, renderer=fp32_renderer)
        int8 = evaluate_avatar(avatar, renderer=FaceRenderer(avatar, OnnxGenerator(partial)))
        if missed := _losses(fp32, int8):
            raise AvatarError(
                f"the INT8 generator of {avatar.manifest.name!r} loses too much on held-out "
                f"frames ({'; '.join(missed)}); it keeps serving in FP32"
            )
        partial.replace(directory / GENERATOR_INT8)
    finally:
        partial.unlink(missing_ok=True)
    manifest = avatar.manifest
    generator = manifest.generator | {"onnx_int8": GENERATOR_INT8, "validation_int8": int8}
    replace(manifest, generator=generator).write(directory)
    logger.info("avatar %s: INT8 generator written (%s)", manifest.name, int8)
    return {"fp32": fp32, "int8": int8}
