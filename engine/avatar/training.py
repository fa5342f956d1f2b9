"""Train an avatar's generator on its own frames: resumable, seeded, with progress.

Losses (EVP §3.3, pix2pixHD-style, with a temporal term):

    L_G = w_l1 |W (G(x) - y)|  +  w_temporal |(G(x2) - G(x1)) - (y2 - y1)|
          + w_adv (D(x, G(x)) - 1)^2  +  w_feature sum_k |D_k(x, G(x)) - D_k(x, y)|
    L_D = (D(x, y) - 1)^2 + D(x, G(x))^2                  (least-squares GAN)

x1, x2 are consecutive frames, so the temporal term asks frame-to-frame changes to match
the video's. W weighs the pixels around the brows, eyelids and lips (the sketch's own
lines, grown by FEATURE_RADIUS) w_features times the rest, normalised to a mean of 1:
they are a small part of the crop and all of an expression, and an unweighted L1 lets
the generator blur them. The discriminator's feature-matching term is the perceptual loss: no
pretrained image network can be downloaded here, and the discriminator's features are
the ones pix2pixHD found to matter. The adversarial terms start after a warm-up of pure
reconstruction, which keeps early CPU training stable.

A run writes ``<state>`` every ``save_every`` steps; running again resumes from it when the
options match, and refuses (naming the file) when they do not.
"""

import logging
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import cast

import numpy as np
import torch
from torch import nn

from engine.avatar.generator import N_GUIDANCE, Discriminator, Generator, GeneratorConfig
from engine.training.loop import _Progress, load_state, save_state, seed_everything

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrainOptions:
    steps: int = 1500
    batch_pairs: int = 2  # pairs of consecutive frames per step: a batch of 4 images
    lr: float = 2e-4
    seed: int = 0
    warmup: float = 0.25  # fraction of steps before the adversarial terms switch on
    w_l1: float = 10.0
    w_temporal: float = 5.0
    w_adv: float = 0.5
    w_feature: float = 2.0
    w_features: float = 4.0  # L1 weight around brows, eyelids and lips (module doc); 1: none
    jitter: float = 0.04  # random shift (fraction of S) and zoom (1 +- jitter) per pair
    save_every: int = 100
    log_every: int = 25


class SampleSet:
    """The training frames of one avatar, kept compact (uint8) in memory.

    rgb: (T, S, S, 3) uint8; guidance: (T, 6, S, S) uint8; mask: (T, S, S) float32;
    pairs: (P, 2) frame indices (a, b) with b the frame after a, or b = a for stills.
    """

    def __init__(
        self, rgb: np.ndarray, guidance: np.ndarray, mask: np.ndarray, pairs: np.ndarray
    ) -> None:
        count, size = rgb.shape[0], rgb.shape[1]
        if rgb.shape != (count, size, size, 3) or guidance.shape != (count, N_GUIDANCE, size, size):
            raise ValueError(f"inconsistent sample shapes {rgb.shape} {guidance.shape}")
        if not len(pairs):
            raise ValueError("no training pairs")
        self.rgb, self.guidance, self.pairs = rgb, guidance, np.asarray(pairs)
        self.mask = (np.clip(mask, 0, 1) * 255).astype(np.uint8)

    @property
    def size(self) -> int:
        return self.rgb.shape[1]

    def batch(self, index: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        """(B,) frame indices -> inputs (B, 10, S, S) and targets (B, 3, S, S)."""
        rgb = torch.from_numpy(self.rgb[index]).permute(0, 3, 1, 2).float() / 127.5 - 1
        mask = torch.from_numpy(self.mask[index]).float()[:, None] / 255
        guidance = torch.from_numpy(self.guidance[index]).float() / 255
        return torch.cat([guidance, rgb * (1 - mask), mask], dim=1), rgb


def jitter(
    inputs: torch.Tensor, real: torch.Tensor, amount: float, rng: np.random.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """The same random shift and zoom for a sample's input and target, and for both frames
    of a pair (the batch holds all first frames, then all second ones), so the generator
    sees its face in more places than the video put it, and temporal pairs stay aligned."""
    if amount <= 0:
        return inputs, real
    pairs = len(inputs) // 2
    zoom = 1 + rng.uniform(-amount, amount, pairs)
    shift = rng.uniform(-2 * amount, 2 * amount, (pairs, 2))  # grid units: 2 = whole side
    pair_theta = np.zeros((pairs, 2, 3), np.float32)
    pair_theta[:, 0, 0] = pair_theta[:, 1, 1] = 1 / zoom
    pair_theta[:, :, 2] = shift
    theta = torch.from_numpy(np.concatenate([pair_theta, pair_theta]))
    both = torch.cat([inputs, real], dim=1)
    grid = nn.functional.affine_grid(theta, list(both.shape), align_corners=False)
    moved = nn.functional.grid_sample(both, grid, padding_mode="border", align_corners=False)
    return moved[:, : inputs.shape[1]], moved[:, inputs.shape[1] :]


FEATURE_CHANNELS = (1, 3, 4)  # brows, eyes, lips (engine.avatar.guidance.PARTS)
FEATURE_RADIUS = 4  # px at 256: the lines grown to cover lids, brow hair and lip edges


def feature_weights(inputs: torch.Tensor, weight: float) -> torch.Tensor:
    """(B, C, S, S) generator inputs -> (B, 1, S, S) per-pixel L1 weights: ``weight``
    near the brow, eyelid and lip lines of the sketch, 1 elsewhere, scaled to mean 1."""
    lines = inputs[:, list(FEATURE_CHANNELS)].amax(dim=1, keepdim=True)
    size = 2 * round(FEATURE_RADIUS * inputs.shape[-1] / 256) + 1
    near = nn.functional.max_pool2d(lines, size, stride=1, padding=size // 2)
    weights = 1 + (weight - 1) * near
    return weights / weights.mean(dim=(2, 3), keepdim=True)


def _d_loss(discriminator, guidance, real, fake) -> torch.Tensor:
    real_logits = discriminator(guidance, real)[-1]
    fake_logits = discriminator(guidance, fake.detach())[-1]
    return ((real_logits - 1) ** 2).mean() + (fake_logits**2).mean()


def train_generator(
    samples: SampleSet,
    config: GeneratorConfig,
    options: TrainOptions,
    state_path: Path,
    on_progress: Callable[[int, int], None] | None = None,
    device: str | torch.device | None = None,
) -> Generator:
    """Train (or resume training) a generator; returns it on the CPU in eval mode.

    on_progress(step, total) is called after every step (for build progress bars).
    device: "cpu", "cuda", ... (default: CUDA when available); a run may resume on another.
    """
    if samples.size != config.size:
        raise ValueError(f"samples are {samples.size} px, the generator wants {config.size}")
    device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    rng = seed_everything(options.seed)
    generator, discriminator = Generator(config).to(device), Discriminator().to(device)
    opt_g = torch.optim.Adam(generator.parameters(), lr=options.lr, betas=(0.5, 0.999))
    opt_d = torch.optim.Adam(discriminator.parameters(), lr=options.lr, betas=(0.5, 0.999))
    signature = {"options": asdict(options), "config": config.to_json(), "frames": len(samples.rgb)}
    parts = {"generator": generator, "discriminator": discriminator, "opt_g": opt_g, "opt_d": opt_d}
    step = load_state(state_path, signature, rng, **parts)
    if step:
        logger.info("generator: resuming at step %d", step)

    progress = _Progress("generator", options.steps, step)
    recent: dict[str, list[float]] = {}
    warmup_steps = int(options.warmup * options.steps)
    l1 = nn.functional.l1_loss
    generator.train()
    while step < options.steps:
        chosen = samples.pairs[rng.integers(len(samples.pairs), size=options.batch_pairs)]
        inputs, real = samples.batch(chosen.T.reshape(-1))  # all first frames, then seconds
        inputs, real = jitter(inputs, real, options.jitter, rng)
        inputs, real = inputs.to(device), real.to(device)
        fake = generator(inputs)
        half = options.batch_pairs
        weights = feature_weights(inputs, options.w_features)
        losses = {
            "l1": options.w_l1 * (weights * (fake - real).abs()).mean(),
            "temporal": options.w_temporal
            * l1(fake[half:] - fake[:half], real[half:] - real[:half]),
        }
        adversarial = step >= warmup_steps
        guidance = inputs[:, :N_GUIDANCE]
        if adversarial:
            opt_d.zero_grad(set_to_none=True)
            d_loss = _d_loss(discriminator, guidance, real, fake)
            d_loss.backward()
            opt_d.step()
            fake_features = discriminator(guidance, fake)
            with torch.no_grad():
                real_features = discriminator(guidance, real)
            losses["adv"] = options.w_adv * ((fake_features[-1] - 1) ** 2).mean()
            feature = cast(  # sum's 0 start: the discriminator has several feature maps
                torch.Tensor,
                sum(l1(f, r) for f, r in zip(fake_features[:-1], real_features[:-1], strict=True)),
            )
            losses["feature"] = options.w_feature * feature
            losses["d"] = d_loss.detach()
        opt_g.zero_grad(set_to_none=True)
        cast(torch.Tensor, sum(v for k, v in losses.items() if k != "d")).backward()
        opt_g.step()
        step += 1
        for k, v in losses.items():
            recent.setdefault(k, []).append(float(v.detach()))
        if step % options.log_every == 0 or step == options.steps:
            progress.show(step, {k: float(np.mean(v)) for k, v in recent.items()})
            recent = {}
        if step % options.save_every == 0 and step < options.steps:
            save_state(state_path, step, rng, signature, **parts)
        if on_progress is not None:
            on_progress(step, options.steps)
    return generator.cpu().eval()
