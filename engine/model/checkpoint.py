"""Checkpoints: one safetensors file holding every network, the MFCC statistics, the
emotion space, and (as JSON metadata) the configuration and training record.

    weights:   "<network>.<parameter>" tensors of AudioToLandmarks
               "space.means" (8, emotion_dim), "space.counts" (8,)  per-emotion cluster means
               "space.canonical" (68, 2)  the neutral face the landmark targets were made on
    metadata:  "format" = "evp-a2l", "version", "config" (ModelConfig JSON),
               "info" (JSON: stages trained, data, speakers used for training, metrics)

Files are written to a temporary name and renamed, so a crash never leaves a torn file.
"""

import json
from dataclasses import dataclass, field
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file

from engine.errors import EngineError
from engine.model.networks import AudioToLandmarks, ModelConfig

FORMAT = "evp-a2l"
VERSION = 1
DEFAULT_WEIGHTS = Path(__file__).resolve().parent / "weights" / "evp-a2l.safetensors"


@dataclass
class Checkpoint:
    model: AudioToLandmarks
    means: torch.Tensor  # (8, emotion_dim) emotion cluster means, EMOTIONS order
    counts: torch.Tensor  # (8,) utterances behind each mean; 0 = emotion never seen
    info: dict = field(default_factory=dict)
    canonical: torch.Tensor | None = None  # (68, 2) the neutral face of the training targets

    @property
    def config(self) -> ModelConfig:
        return self.model.config

    @property
    def trained_groups(self) -> set[str]:
        """Speaker groups (engine.data.speakers) whose real faces the landmark stage
        learned from in the ``lips`` stage; none for a teacher-only checkpoint."""
        return set(self.info.get("stages", {}).get("lips", {}).get("train_groups", []))


def require_trained(checkpoint: Checkpoint, networks: tuple[str, ...], stage: str) -> None:
    """Refuse checkpoints whose ``networks`` were not trained (a stripped ablation file,
    or an earlier stage's output) instead of running random weights."""
    stored = checkpoint.info.get("networks")
    missing = [n for n in networks if stored is not None and n not in stored]
    if missing or stage not in checkpoint.info.get("stages", {}):
        raise EngineError(
            f"this checkpoint has not been trained through the '{stage}' stage "
            f"(missing: {', '.join(missing) or stage}); use a checkpoint from `evp train {stage}`"
        )


def new_checkpoint(config: ModelConfig) -> Checkpoint:
    return Checkpoint(
        AudioToLandmarks(config),
        torch.zeros(config.n_emotions, config.emotion_dim),
        torch.zeros(config.n_emotions),
    )


def save_checkpoint(
    checkpoint: Checkpoint,
    path: Path,
    networks: tuple[str, ...] | None = None,
    dtype: torch.dtype = torch.float32,
) -> None:
    """Writes every network, or only ``networks`` (e.g. ("content", "emotion")) stored
    as ``dtype``; loading restores float32 and leaves the other networks untrained."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tensors = {
        k: (v.to(dtype) if v.is_floating_point() else v).detach().cpu().contiguous()
        for k, v in checkpoint.model.state_dict().items()
        if networks is None or k.split(".")[0] in networks
    }
    tensors["space.means"] = checkpoint.means.detach().cpu().contiguous()
    tensors["space.counts"] = checkpoint.counts.detach().cpu().contiguous()
    if checkpoint.canonical is not None:
        tensors["space.canonical"] = checkpoint.canonical.detach().float().cpu().contiguous()
    metadata = {
        "format": FORMAT,
        "version": str(VERSION),
        "config": json.dumps(checkpoint.config.to_dict()),
        "info": json.dumps(checkpoint.info),
    }
    if networks is not None:
        metadata["networks"] = json.dumps(list(networks))
    tmp = path.with_name(path.name + ".partial")
    save_file(tensors, str(tmp), metadata=metadata)
    tmp.replace(path)


def load_checkpoint(path: Path | None = None) -> Checkpoint:
    """Loads a checkpoint (the shipped default when path is None), in eval mode."""
    path = Path(path) if path is not None else DEFAULT_WEIGHTS
    if not path.is_file():
        raise EngineError(f"no model checkpoint at {path}; train one with `evp train all`")
    try:
        with safe_open(str(path), framework="pt") as f:
            metadata = f.metadata() or {}
        tensors = load_file(str(path))
    except (SafetensorError, OSError, ValueError) as e:
        raise EngineError(f"{path} is not a readable safetensors checkpoint: {e}") from e
    if metadata.get("format") != FORMAT or metadata.get("version") != str(VERSION):
        raise EngineError(
            f"{path}: expected an {FORMAT} v{VERSION} checkpoint, found "
            f"{metadata.get('format')} v{metadata.get('version')}"
        )
    try:
        config = ModelConfig.from_dict(json.loads(metadata["config"]))
        checkpoint = new_checkpoint(config)
        checkpoint.means = tensors.pop("space.means").float()
        checkpoint.counts = tensors.pop("space.counts").float()
        checkpoint.canonical = tensors.pop("space.canonical", None)
        checkpoint.info = json.loads(metadata.get("info", "{}"))
    except (KeyError, ValueError, TypeError) as e:
        raise EngineError(f"{path}: incomplete or malformed checkpoint ({e!r})") from e
    expected = {
        "space.means": (checkpoint.means, (config.n_emotions, config.emotion_dim)),
        "space.counts": (checkpoint.counts, (config.n_emotions,)),
    }
    if checkpoint.canonical is not None:
        expected["space.canonical"] = (checkpoint.canonical, (68, 2))
    for name, (tensor, shape) in expected.items():
        if tuple(tensor.shape) != shape:
            raise EngineError(f"{path}: {name} is {tuple(tensor.shape)}, expected {shape}")
    tensors = {k: v.float() if v.is_floating_point() else v for k, v in tensors.items()}
    partial = json.loads(metadata["networks"]) if "networks" in metadata else None
    try:
        missing, unexpected = checkpoint.model.load_state_dict(tensors, strict=partial is None)
    except RuntimeError as e:
        raise EngineError(f"{path}: weights do not match the stored configuration: {e}") from e
    if partial is not None:
        wrong = [k for k in missing if k.split(".")[0] in partial] + list(unexpected)
        if wrong:
            raise EngineError(f"{path}: weights do not match the stored configuration: {wrong[:5]}")
        checkpoint.info["networks"] = partial
    checkpoint.model.eval()
    return checkpoint
