"""Running a trained checkpoint: whole clips at once, or one video frame at a time.

Both paths take the front-end's MFCC windows ((T, 28, 12), made with the checkpoint's
``window``), an emotion code per frame ((T, emotion_dim) or one (emotion_dim,) for all)
and the avatar's neutral frontal landmarks (68, 2), and return frontal landmarks
(T, 68, 2) in IOD units. A ``LandmarkStream`` keeps the LSTM state (h, c) of one session
and gives the same landmarks as ``predict`` on the whole sequence.
"""

from pathlib import Path

import numpy as np
import torch

from engine.audio.frontend import FrontEndOptions, analyse_offline
from engine.audio.mfcc import WindowSpec
from engine.constants import MFCC_N_COEFFS, MFCC_WINDOW_FRAMES, N_LANDMARKS
from engine.errors import EngineError
from engine.model.checkpoint import Checkpoint, load_checkpoint, require_trained
from engine.model.networks import LstmState


def _neutral_tensor(neutral: np.ndarray) -> torch.Tensor:
    neutral = np.asarray(neutral, dtype=np.float32)
    if neutral.shape != (N_LANDMARKS, 2) or not np.isfinite(neutral).all():
        raise EngineError(
            f"neutral landmarks must be finite (68, 2) frontal points, got {neutral.shape}"
        )
    return torch.from_numpy(neutral)[None]


class LandmarkModel:
    def __init__(self, checkpoint: Checkpoint) -> None:
        require_trained(checkpoint, ("content", "identity", "landmarks"), "landmarks")
        self.checkpoint = checkpoint
        self.model = checkpoint.model.eval()

    @classmethod
    def load(cls, path: Path | None = None) -> "LandmarkModel":
        return cls(load_checkpoint(path))

    @property
    def canonical_face(self) -> np.ndarray:
        """(68, 2) the neutral frontal face the model was trained on."""
        if self.checkpoint.canonical is None:
            raise EngineError("this checkpoint does not store its canonical face")
        return self.checkpoint.canonical.numpy().copy()

    @property
    def window(self) -> WindowSpec:
        return WindowSpec(self.checkpoint.config.lookahead_hops)

    def windows(self, audio: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """16 kHz audio -> (windows (T, 28, 12), voiced (T,)) with this model's window."""
        windows, _, voiced = analyse_offline(audio, FrontEndOptions(window=self.window))
        return windows, voiced

    @torch.no_grad()
    def identity(self, neutral: np.ndarray) -> torch.Tensor:
        return self.model.identity(_neutral_tensor(neutral))

    @torch.no_grad()
    def content(self, windows: np.ndarray) -> torch.Tensor:
        """(T, 28, 12) -> (T, content_dim)."""
        x = torch.from_numpy(np.ascontiguousarray(windows, dtype=np.float32))
        if x.ndim != 3 or x.shape[1:] != (MFCC_WINDOW_FRAMES, MFCC_N_COEFFS):
            raise EngineError(f"MFCC windows must be (T, 28, 12), got {tuple(x.shape)}")
        return (
            self.model.content(x) if len(x) else torch.zeros(0, self.checkpoint.config.content_dim)
        )

    @torch.no_grad()
    def predict(self, windows: np.ndarray, emotion: np.ndarray, neutral: np.ndarray) -> np.ndarray:
        """Whole sequence -> (T, 68, 2) frontal landmarks."""
        if len(windows) == 0:
            raise EngineError("no audio frames: the audio is shorter than one 40 ms video frame")
        content = self.content(windows)[None]
        codes = self._codes(emotion, content.shape[1])[None]
        displacement, _ = self.model.landmarks(content, codes, self.identity(neutral))
        return (np.asarray(neutral, np.float32)[None] + displacement[0].numpy()).astype(np.float32)

    def stream(self, neutral: np.ndarray) -> "LandmarkStream":
        return LandmarkStream(self, neutral)

    def _codes(self, emotion: np.ndarray, frames: int) -> torch.Tensor:
        codes = torch.from_numpy(np.asarray(emotion, dtype=np.float32))
        dim = self.checkpoint.config.emotion_dim
        if codes.shape == (dim,):
            return codes[None].expand(frames, dim)
        if codes.shape != (frames, dim):
            raise EngineError(
                f"emotion codes must be ({dim},) or ({frames}, {dim}), got {tuple(codes.shape)}"
            )
        return codes


class LandmarkStream:
    """One session's landmark predictor: one LSTM step per video frame."""

    def __init__(self, model: LandmarkModel, neutral: np.ndarray) -> None:
        self._model = model
        self._neutral = np.asarray(neutral, np.float32)
        self._identity = model.identity(neutral)
        self.state: LstmState | None = None

    def reset(self) -> None:
        """Forget the past (a new utterance epoch): the next step starts from zero state."""
        self.state = None

    @torch.no_grad()
    def step(self, window: np.ndarray, emotion: np.ndarray) -> np.ndarray:
        """(28, 12) window, (emotion_dim,) code -> (68, 2) landmarks of this frame."""
        content = self._model.content(np.asarray(window)[None])[None]
        codes = self._model._codes(emotion, 1)[None]
        displacement, self.state = self._model.model.landmarks(
            content, codes, self._identity, self.state
        )
        return self._neutral + displacement[0, 0].numpy()
