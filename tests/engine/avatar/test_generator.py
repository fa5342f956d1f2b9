import numpy as np
import pytest
import torch

from engine.avatar.generator import (
    MASK_CHANNEL,
    N_INPUTS,
    Generator,
    GeneratorConfig,
    export_onnx,
    load_generator,
    save_generator,
)
from engine.errors import AvatarError

SMALL = GeneratorConfig(size=64, widths=(8, 16, 16, 24), blocks=1)


def _inputs(batch=2, size=64, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(batch, N_INPUTS, size, size, generator=g)
    x[:, MASK_CHANNEL] = 0
    x[:, MASK_CHANNEL, 16:48, 16:48] = 1  # the face: a square in the middle
    x[:, 6:9] = (x[:, 6:9] * 2 - 1) * (1 - x[:, MASK_CHANNEL : MASK_CHANNEL + 1])
    return x


def test_outside_the_mask_the_target_frame_passes_through():
    torch.manual_seed(0)
    x = _inputs()
    y = Generator(SMALL).eval()(x).detach()
    assert y.shape == (2, 3, 64, 64)
    outside = x[:, MASK_CHANNEL] == 0
    assert torch.equal(y.permute(1, 0, 2, 3)[:, outside], x[:, 6:9].permute(1, 0, 2, 3)[:, outside])
    inside = x[:, MASK_CHANNEL] == 1
    assert y.permute(1, 0, 2, 3)[:, inside].abs().max() <= 1


def test_the_default_size_is_256_and_sizes_must_divide_by_16():
    assert GeneratorConfig().size == 256
    with pytest.raises(ValueError, match="multiple of 16"):
        Generator(GeneratorConfig(size=100))


def test_saved_weights_and_onnx_give_the_same_frames(tmp_path):
    import onnxruntime as ort

    torch.manual_seed(1)
    generator = Generator(SMALL).eval()
    save_generator(tmp_path / "g.safetensors", generator)
    loaded = load_generator(tmp_path / "g.safetensors")
    assert loaded.config == SMALL
    x = _inputs(batch=3)
    with torch.no_grad():
        expected = generator(x).numpy()
        assert np.array_equal(loaded(x).numpy(), expected)
    export_onnx(generator, tmp_path / "g.onnx")
    session = ort.InferenceSession(str(tmp_path / "g.onnx"), providers=["CPUExecutionProvider"])
    (got,) = session.run(None, {"guided": x.numpy()})  # batch 3 through a batch-1 export
    assert got.shape == expected.shape and np.abs(got - expected).max() < 1e-4


def test_unreadable_weights_name_the_file(tmp_path):
    bad = tmp_path / "g.safetensors"
    bad.write_bytes(b"garbage")
    with pytest.raises(AvatarError, match="g.safetensors"):
        load_generator(bad)
