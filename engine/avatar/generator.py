"""The per-avatar generator (EVP §3.3): guidance map + masked target frame -> face crop.

Input, one (N, 10, S, S) float tensor on the avatar's square face crop (S = 256 by default):

    channels 0-5   guidance (engine.avatar.guidance): five sketch parts and the frame's own
                   edges outside the face, 0..1
    channels 6-8   the target frame with the face blended out, RGB in -1..1
                   (``frame * (1 - mask)``)
    channel  9     the feathered face mask m, 0..1

Output, (N, 3, S, S) RGB in -1..1: ``m * G(x) + (1 - m) * frame``. Outside the face the
target frame passes through untouched, so the generator's capacity goes to the face and
the background, hair and clothes stay the video's own.

The network is a small U-Net (stride-2 encoder, residual bottleneck at S/16, additive skips,
pixel-shuffle output), sized to run in about 10 ms on two CPU cores under ONNX Runtime.
"""

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from torch import nn

from engine.errors import AvatarError

N_GUIDANCE = 6
N_INPUTS = N_GUIDANCE + 3 + 1
MASK_CHANNEL = N_INPUTS - 1


@dataclass(frozen=True)
class GeneratorConfig:
    size: int = 256  # square crop side, pixels; a multiple of 16
    widths: tuple[int, ...] = (16, 32, 64, 96)  # encoder channels at S/2, S/4, S/8, S/16
    blocks: int = 2  # residual blocks at S/16

    def to_json(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict) -> "GeneratorConfig":
        return cls(int(data["size"]), tuple(int(w) for w in data["widths"]), int(data["blocks"]))


def _conv(c_in: int, c_out: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, 3, stride, 1), nn.InstanceNorm2d(c_out, affine=True), nn.SiLU()
    )


class _Residual(nn.Module):
    def __init__(self, channels: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            _conv(channels, channels),
            nn.Conv2d(channels, channels, 3, 1, 1),
            nn.InstanceNorm2d(channels, affine=True),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class Generator(nn.Module):
    def __init__(self, config: GeneratorConfig = GeneratorConfig()) -> None:
        super().__init__()
        if config.size % 16:
            raise ValueError(f"generator size must be a multiple of 16, got {config.size}")
        self.config = config
        widths = config.widths
        ins = (N_INPUTS, *widths[:-1])
        self.down = nn.ModuleList(_conv(i, o, stride=2) for i, o in zip(ins, widths, strict=True))
        self.middle = nn.Sequential(*(_Residual(widths[-1]) for _ in range(config.blocks)))
        self.up = nn.ModuleList(
            _conv(widths[i], widths[i - 1]) for i in range(len(widths) - 1, 0, -1)
        )
        self.to_rgb = nn.Sequential(nn.Conv2d(widths[0], 3 * 4, 3, 1, 1), nn.PixelShuffle(2))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(N, 10, S, S) -> (N, 3, S, S), see the module docstring."""
        frame = x[:, N_GUIDANCE : N_GUIDANCE + 3]
        mask = x[:, MASK_CHANNEL : MASK_CHANNEL + 1]
        skips = []
        h = x
        for layer in self.down:
            h = layer(h)
            skips.append(h)
        h = self.middle(h)
        for layer, skip in zip(self.up, reversed(skips[:-1]), strict=True):
            h = layer(nn.functional.interpolate(h, scale_factor=2.0, mode="nearest")) + skip
        face = torch.tanh(self.to_rgb(h))
        return mask * face + frame  # frame is already blended out where mask > 0


class Discriminator(nn.Module):
    """Conditional PatchGAN on (guidance, image); returns its feature maps, last = logits."""

    def __init__(self, widths: tuple[int, ...] = (32, 64, 96)) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        c_in = N_GUIDANCE + 3
        for c_out in widths:
            layers.append(
                nn.Sequential(nn.Conv2d(c_in, c_out, 4, 2, 1), nn.LeakyReLU(0.2, inplace=True))
            )
            c_in = c_out
        layers.append(nn.Conv2d(c_in, 1, 3, 1, 1))
        self.layers = nn.ModuleList(layers)

    def forward(self, guidance: torch.Tensor, image: torch.Tensor) -> list[torch.Tensor]:
        h = torch.cat([guidance, image], dim=1)
        features = []
        for layer in self.layers:
            h = layer(h)
            features.append(h)
        return features


def save_generator(path: Path, generator: Generator) -> None:
    """Weights as safetensors with the layout in metadata; written atomically."""
    from safetensors.torch import save_file

    tmp = path.with_name(path.name + ".partial")
    state = {k: v.detach().contiguous() for k, v in generator.state_dict().items()}
    save_file(state, str(tmp), metadata={"config": json.dumps(generator.config.to_json())})
    tmp.chmod(0o644)  # safetensors creates the file private; bundles are shared
    tmp.replace(path)


def load_generator(path: Path) -> Generator:
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(path), framework="pt") as f:
            config = GeneratorConfig.from_json(json.loads(f.metadata()["config"]))
            state = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118 (safe_open is not a dict)
    except (FileNotFoundError, SafetensorError, KeyError, TypeError, json.JSONDecodeError) as e:
        raise AvatarError(f"cannot load generator weights {path}: {e}") from e
    generator = Generator(config)
    generator.load_state_dict(state)
    return generator.eval()


def export_onnx(generator: Generator, path: Path) -> None:
    """ONNX (opset 17) with a dynamic batch axis: input "guided" (N, 10, S, S), output
    "image" (N, 3, S, S); written atomically."""
    import warnings

    size = generator.config.size
    tmp = path.with_name(path.name + ".partial")
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            generator.eval(),
            (torch.zeros(1, N_INPUTS, size, size),),
            str(tmp),
            input_names=["guided"],
            output_names=["image"],
            dynamic_axes={"guided": {0: "batch"}, "image": {0: "batch"}},
            opset_version=17,
            dynamo=False,
        )
    tmp.replace(path)
