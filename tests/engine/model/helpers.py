"""Random-weight checkpoints that stand in for trained ones (shapes and code paths only)."""

import torch

from engine.model.checkpoint import Checkpoint, new_checkpoint
from engine.model.networks import ModelConfig
from engine.training.names import STAGES


def random_checkpoint(config: ModelConfig, seed: int = 0) -> Checkpoint:
    torch.manual_seed(seed)
    checkpoint = new_checkpoint(config)
    checkpoint.means = torch.randn(config.n_emotions, config.emotion_dim)
    checkpoint.counts = torch.tensor([5.0, 5, 0, 5, 5, 5, 5, 5])  # no contempt
    checkpoint.info = {"train_speakers": ["a"], "stages": {stage: {} for stage in STAGES}}
    checkpoint.model.eval()
    return checkpoint
