"""The networks of EVP's audio-to-landmark module (paper §3.2 and §3.3).

Shapes at every boundary (B batch, T video frames, H MFCC hops, C = 12 coefficients):

    ContentEncoder     Ec  (B, 28, 12) MFCC window of one video frame -> (B, content_dim)
    EmotionEncoder     Ee  (B, H, 15) MFCC + prosody hops, any length  -> (B, emotion_dim)
    Decoder            D   (B, content_dim), (B, emotion_dim)          -> (B, 28, 12)
    EmotionClassifier  Ce  (B, emotion_dim)                            -> (B, 8) logits
    IdentityEncoder        (B, 68, 2) neutral frontal landmarks        -> (B, identity_dim)
    LandmarkDecoder        content (B, T, c), emotion (B, T, e), identity (B, i), state
                           -> displacements (B, T, 68, 2) from the neutral face, state

MFCC inputs are normalised inside the networks with statistics stored as buffers, so a
checkpoint carries everything needed to run it. Landmarks are frontal units (IOD = 1).
"""

from dataclasses import asdict, dataclass

import torch
from torch import nn

from engine.audio.prosody import N_PROSODY, VOICING_THRESHOLD
from engine.constants import EMOTIONS, MFCC_N_COEFFS, MFCC_WINDOW_FRAMES, N_LANDMARKS

LstmState = tuple[torch.Tensor, torch.Tensor]  # (h, c), each (layers, B, hidden)
DISPLACEMENT_SCALE = 0.01  # network outputs are % of IOD; landmarks are IOD units


@dataclass(frozen=True)
class ModelConfig:
    """Every size of the networks; stored in each checkpoint."""

    content_dim: int = 128
    emotion_dim: int = 32
    identity_dim: int = 32
    hidden: int = 256
    lstm_layers: int = 1
    n_emotions: int = len(EMOTIONS)
    n_visemes: int = 15
    lookahead_hops: int = 12

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "ModelConfig":
        known = cls.__dataclass_fields__
        unknown = set(data) - set(known)
        if unknown:
            raise ValueError(f"unknown model configuration keys: {sorted(unknown)}")
        return cls(**data)


class MfccNorm(nn.Module):
    """Per-coefficient standardisation with fixed statistics from the training data."""

    mean: torch.Tensor  # buffers, registered in __init__
    std: torch.Tensor

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("mean", torch.zeros(MFCC_N_COEFFS))
        self.register_buffer("std", torch.ones(MFCC_N_COEFFS))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std


class ContentEncoder(nn.Module):
    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.norm = MfccNorm()
        self.conv = nn.Sequential(
            nn.Conv2d(1, 32, 3, padding=1),
            nn.BatchNorm2d(32),
            nn.LeakyReLU(0.2),
            nn.Conv2d(32, 64, 3, stride=(2, 1), padding=1),
            nn.BatchNorm2d(64),
            nn.LeakyReLU(0.2),
            nn.Conv2d(64, 64, 3, stride=2, padding=1),
            nn.BatchNorm2d(64),
            nn.LeakyReLU(0.2),
        )
        flat = 64 * ((MFCC_WINDOW_FRAMES + 3) // 4) * (MFCC_N_COEFFS // 2)
        self.fc = nn.Sequential(
            nn.Linear(flat, 256), nn.LeakyReLU(0.2), nn.Linear(256, config.content_dim)
        )

    def forward(self, window: torch.Tensor) -> torch.Tensor:
        x = self.conv(self.norm(window).unsqueeze(1))
        return self.fc(x.flatten(1))


class EmotionEncoder(nn.Module):
    """Dilated 1-D convolutions over time, then mean and standard deviation pooling, so
    the code does not depend on the clip's duration.

    Prosody enters relative to the clip itself, so neither microphone gain nor a
    speaker's natural pitch matters: level in dB below the clip's loudest hop, and log-F0
    in octaves from the clip's mean over voiced hops (0 where unvoiced)."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.norm = MfccNorm()
        layers: list[nn.Module] = []
        channels = MFCC_N_COEFFS + N_PROSODY
        for dilation in (1, 2, 4):
            layers += [
                nn.Conv1d(channels, 64, 5, dilation=dilation, padding=2 * dilation),
                nn.BatchNorm1d(64),
                nn.LeakyReLU(0.2),
            ]
            channels = 64
        self.conv = nn.Sequential(*layers)
        self.fc = nn.Sequential(
            nn.Dropout(0.3),
            nn.Linear(128, 128),
            nn.LeakyReLU(0.2),
            nn.Linear(128, config.emotion_dim),
        )

    def forward(self, hops: torch.Tensor) -> torch.Tensor:
        mfcc, level, log_f0, voicing = (
            hops[..., :MFCC_N_COEFFS],
            hops[..., -3],
            hops[..., -2],
            hops[..., -1],
        )
        voiced = (voicing >= VOICING_THRESHOLD).float()
        mean_f0 = (log_f0 * voiced).sum(1, keepdim=True) / voiced.sum(1, keepdim=True).clamp(
            min=1.0
        )
        relative_f0 = (log_f0 - mean_f0) * voiced * 2.0  # half-octaves
        relative_level = ((level - level.amax(1, keepdim=True)) / 20.0).clamp(min=-3.0)
        prosody = torch.stack([relative_level, relative_f0, voicing], dim=2)
        x = torch.cat([self.norm(mfcc), prosody], dim=2)
        x = self.conv(x.transpose(1, 2))  # (B, 64, H)
        pooled = torch.cat([x.mean(dim=2), x.std(dim=2, unbiased=False)], dim=1)
        return self.fc(pooled)


class Decoder(nn.Module):
    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(config.content_dim + config.emotion_dim, 512),
            nn.LeakyReLU(0.2),
            nn.Linear(512, 512),
            nn.LeakyReLU(0.2),
            nn.Linear(512, MFCC_WINDOW_FRAMES * MFCC_N_COEFFS),
        )

    def forward(self, content: torch.Tensor, emotion: torch.Tensor) -> torch.Tensor:
        """Reconstructs the *normalised* MFCC window."""
        out = self.net(torch.cat([content, emotion], dim=1))
        return out.view(-1, MFCC_WINDOW_FRAMES, MFCC_N_COEFFS)


class EmotionClassifier(nn.Module):
    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.LeakyReLU(0.2), nn.Linear(config.emotion_dim, config.n_emotions)
        )

    def forward(self, emotion: torch.Tensor) -> torch.Tensor:
        return self.net(emotion)


class IdentityEncoder(nn.Module):
    """The avatar's neutral frontal landmarks (mean-centred) -> an identity code."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(N_LANDMARKS * 2, 128), nn.LeakyReLU(0.2), nn.Linear(128, config.identity_dim)
        )

    def forward(self, neutral: torch.Tensor) -> torch.Tensor:
        centred = neutral - neutral.mean(dim=1, keepdim=True)
        return self.net(centred.flatten(1) * 10.0)  # IOD units -> O(1) inputs


class LandmarkDecoder(nn.Module):
    """Eq. 7: an LSTM over frames of [content, emotion, identity] and a 2-layer MLP that
    predicts each frame's landmark displacement l_d from the neutral face l_a."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        width = config.content_dim + config.emotion_dim + config.identity_dim
        self.lstm = nn.LSTM(width, config.hidden, num_layers=config.lstm_layers, batch_first=True)
        self.mlp = nn.Sequential(
            nn.Linear(config.hidden, config.hidden),
            nn.LeakyReLU(0.2),
            nn.Linear(config.hidden, N_LANDMARKS * 2),
        )

    def forward(
        self,
        content: torch.Tensor,
        emotion: torch.Tensor,
        identity: torch.Tensor,
        state: LstmState | None = None,
    ) -> tuple[torch.Tensor, LstmState]:
        b, t, _ = content.shape
        x = torch.cat([content, emotion, identity[:, None, :].expand(b, t, -1)], dim=2)
        out, state = self.lstm(x, state)
        displacement = self.mlp(out).view(b, t, N_LANDMARKS, 2) * DISPLACEMENT_SCALE
        return displacement, state


class AudioToLandmarks(nn.Module):
    """All networks of the module, under the names the checkpoint uses."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        self.content = ContentEncoder(config)
        self.emotion = EmotionEncoder(config)
        self.decoder = Decoder(config)
        self.classifier = EmotionClassifier(config)
        self.viseme_head = nn.Linear(config.content_dim, config.n_visemes)  # content pretraining
        self.identity = IdentityEncoder(config)
        self.landmarks = LandmarkDecoder(config)

    def set_mfcc_stats(self, mean: torch.Tensor, std: torch.Tensor) -> None:
        for norm in (self.content.norm, self.emotion.norm):
            norm.mean.copy_(mean)
            norm.std.copy_(std)

    def encode_content(self, windows: torch.Tensor) -> torch.Tensor:
        """(B, T, 28, 12) -> (B, T, content_dim)."""
        b, t = windows.shape[:2]
        return self.content(windows.reshape(b * t, *windows.shape[2:])).view(b, t, -1)


class LandmarkStep(nn.Module):
    """One frame of the landmark decoder with its LSTM state passed in and out."""

    def __init__(self, model: AudioToLandmarks) -> None:
        super().__init__()
        self.decoder = model.landmarks

    def forward(self, content, emotion, identity, h, c):
        displacement, (h_out, c_out) = self.decoder(
            content[:, None], emotion[:, None], identity, (h, c)
        )
        return displacement[:, 0], h_out, c_out
