"""The emotion space: where an emotion code for the landmark LSTM comes from.

    EmotionSpace.category("happy", 0.7)     a category at an intensity: neutral mean moved
                                            0.7 of the way to the happy cluster mean
    EmotionSpace.blend(a, b, alpha)         alpha * a + (1 - alpha) * b   (paper Fig. 1b)
    EmotionSpace.from_audio(hops)           Ee of another clip's hops     (paper Fig. 1a)
    EmotionSpace.probabilities(code)        Ce's belief, calibrated (temperature scaling,
                                            engine.model.calibration)
    EmotionSpace.voice_point(code, rest)    what auto mode shows: rest moved towards the
                                            voice's top emotion only as far as the
                                            calibrated evidence goes
    VoiceEmotion                            Ee over a sliding window of the live voice,
                                            smoothed; None when the voice gives no evidence

Codes are (emotion_dim,) float32 numpy arrays. Cluster means are the per-emotion means of
the training utterances' codes, stored in the checkpoint.
"""

from collections import deque
from collections.abc import Callable

import numpy as np

from engine.audio.prosody import N_HOP_FEATURES, compute_hop_features, speech_span
from engine.constants import EMOTIONS, MFCC_HOPS_PER_VIDEO_FRAME, VIDEO_FPS
from engine.errors import EngineError

MIN_CLIP_HOPS = 25  # 0.25 s: shorter clips say too little about emotion
MAX_CLIP_HOPS = 1000  # 10 s per Ee call (TensorRT's profile); longer clips are averaged

Encode = Callable[[np.ndarray], np.ndarray]  # (N, H, 15) hops -> (N, E) codes
Classify = Callable[[np.ndarray], np.ndarray]  # (N, E) codes -> (N, 8) logits, EMOTIONS order

#: Auto mode: below this calibrated probability the voice's top emotion shows nothing;
#: from it to certainty the intensity rises linearly to 1.
EVIDENCE_FLOOR = 0.5


def temperature(checkpoint) -> float:
    """Ce's calibration temperature stored in a checkpoint (1.0: never calibrated)."""
    return float(checkpoint.info.get("calibration", {}).get("temperature", 1.0))


class EmotionSpace:
    """The cluster means and counts of a checkpoint, with Ee and Ce from any backend:
    ``from_checkpoint`` runs them in PyTorch, ``from_runtime`` on a landmark runtime
    (ONNX Runtime needs no torch)."""

    def __init__(
        self,
        means: np.ndarray,
        counts: np.ndarray,
        encode: Encode,
        classify: Classify,
        temperature: float = 1.0,
    ) -> None:
        if not temperature > 0:
            raise EngineError(f"the calibration temperature must be > 0, got {temperature}")
        self.temperature = float(temperature)
        self.means = np.asarray(means, np.float32)
        if self.means.ndim != 2 or len(self.means) != len(EMOTIONS):
            raise EngineError(f"emotion means must be ({len(EMOTIONS)}, E), got {self.means.shape}")
        if len(counts) != len(EMOTIONS):
            raise EngineError(f"emotion counts must be ({len(EMOTIONS)},), got {len(counts)}")
        self.known = tuple(e for e, n in zip(EMOTIONS, counts, strict=True) if n > 0)
        if "neutral" not in self.known:
            raise EngineError("this checkpoint has no neutral cluster; retrain the emotion stage")
        self._encode, self._classify = encode, classify

    @classmethod
    def from_checkpoint(cls, checkpoint) -> "EmotionSpace":
        import torch

        from engine.model.checkpoint import require_trained

        require_trained(checkpoint, ("emotion", "classifier"), "emotion")
        model = checkpoint.model.eval()

        def run(module):
            def call(x: np.ndarray) -> np.ndarray:
                with torch.no_grad():
                    return module(torch.from_numpy(np.ascontiguousarray(x, np.float32))).numpy()

            return call

        return cls(
            checkpoint.means.numpy(), checkpoint.counts.numpy(), run(model.emotion),
            run(model.classifier), temperature(checkpoint),
        )  # fmt: skip

    @classmethod
    def from_runtime(cls, runtime) -> "EmotionSpace":
        """Ee and Ce of an engine.runtime.landmarks runtime, with its stored means."""
        return cls(
            runtime.emotion_means,
            runtime.emotion_counts,
            runtime.emotion,
            runtime.classify,
            runtime.emotion_temperature,
        )

    @property
    def neutral(self) -> np.ndarray:
        return self.means[EMOTIONS.index("neutral")].copy()

    def category(self, emotion: str, intensity: float = 1.0) -> np.ndarray:
        if emotion not in self.known:
            raise EngineError(
                f"unknown emotion {emotion!r}; this model knows {', '.join(self.known)}"
            )
        if not 0.0 <= intensity <= 1.0:
            raise EngineError(f"intensity must be in [0, 1], got {intensity}")
        target = self.means[EMOTIONS.index(emotion)]
        return (self.neutral + intensity * (target - self.neutral)).astype(np.float32)

    @staticmethod
    def blend(source: np.ndarray, target: np.ndarray, alpha: float) -> np.ndarray:
        """alpha * source + (1 - alpha) * target."""
        if not 0.0 <= alpha <= 1.0:
            raise EngineError(f"alpha must be in [0, 1], got {alpha}")
        return (alpha * np.asarray(source) + (1.0 - alpha) * np.asarray(target)).astype(np.float32)

    def from_audio(self, hops: np.ndarray, trim: bool = True) -> np.ndarray:
        """(H, 15) hop features (engine.audio.prosody) -> the clip's emotion code. The
        silence before and after the speech is trimmed first unless trim is False."""
        hops = np.asarray(hops, dtype=np.float32)
        if hops.ndim != 2 or hops.shape[1] != N_HOP_FEATURES:
            raise EngineError(f"hop features must be (H, {N_HOP_FEATURES}), got {hops.shape}")
        if len(hops) < MIN_CLIP_HOPS:
            raise EngineError(
                f"{len(hops) * 10} ms of audio is too short to judge its emotion (need 250 ms)"
            )
        if trim:
            hops = hops[speech_span(hops, MIN_CLIP_HOPS)]
        finite = np.nan_to_num(hops, nan=0.0, posinf=0.0, neginf=0.0)
        if len(finite) <= MAX_CLIP_HOPS:
            return self._encode(finite[None])[0]
        # Long clips: the mean code of equal pieces of 5-10 s.
        pieces = np.array_split(finite, -(-len(finite) // MAX_CLIP_HOPS))
        return np.mean([self._encode(piece[None])[0] for piece in pieces], axis=0)

    def from_signal(self, audio: np.ndarray) -> np.ndarray:
        """(n,) 16 kHz speech -> its emotion code."""
        return self.from_audio(compute_hop_features(audio))

    def logits(self, codes: np.ndarray) -> np.ndarray:
        """(N, E) codes -> (N, len(known)) Ce's logits over the known emotions, uncalibrated."""
        logits = self._classify(np.asarray(codes, np.float32)).astype(np.float64)
        return logits[:, [EMOTIONS.index(e) for e in self.known]]

    def probabilities(self, code: np.ndarray) -> dict[str, float]:
        """Ce's calibrated belief over the emotions this model knows."""
        known = self.logits(np.asarray(code)[None])[0] / self.temperature
        p = np.exp(known - known.max())
        return dict(zip(self.known, (p / p.sum()).tolist(), strict=True))

    def evidence(self, code: np.ndarray) -> tuple[str, float]:
        """The voice's most likely emotion other than neutral and how strongly to show it:
        0 up to EVIDENCE_FLOOR calibrated probability (or when neutral is likelier), then
        rising linearly to 1 at certainty."""
        p = self.probabilities(code)
        emotion = max((e for e in p if e != "neutral"), key=p.__getitem__)
        if p[emotion] <= p.get("neutral", 0.0):
            return emotion, 0.0
        return emotion, float(np.clip((p[emotion] - EVIDENCE_FLOOR) / (1 - EVIDENCE_FLOOR), 0, 1))

    def voice_point(self, code: np.ndarray, rest: np.ndarray) -> np.ndarray:
        """What auto mode shows for a voice code: ``rest`` (neutral, or the user's last
        setting) moved towards the voice's top emotion by its evidence strength."""
        emotion, strength = self.evidence(code)
        target = self.category(emotion, 1.0)
        return (rest + strength * (target - rest)).astype(np.float32)


class VoiceEmotion:
    """The live voice's emotion: Ee over the last ``window_s`` of voiced speech, updated
    every ``update_frames`` video frames and smoothed exponentially. ``code`` is None until
    ``min_voiced_s`` of speech has been heard, and again after ``forget_s`` without
    speech, so callers fall back to the emotion set by the user."""

    def __init__(
        self,
        space: EmotionSpace,
        window_s: float = 3.0,
        min_voiced_s: float = 0.8,
        update_frames: int = 5,
        smoothing: float = 0.7,
        forget_s: float = 4.0,
    ) -> None:
        self._space = space
        hops = int(window_s * VIDEO_FPS * MFCC_HOPS_PER_VIDEO_FRAME)
        self._hops: deque[np.ndarray] = deque(maxlen=hops)
        self._min_hops = int(min_voiced_s * VIDEO_FPS * MFCC_HOPS_PER_VIDEO_FRAME)
        self._update_frames = update_frames
        self._smoothing = smoothing
        self._forget_frames = int(forget_s * VIDEO_FPS)
        self._frames_since_voice = 0
        self._frames_since_update = 0
        self.code: np.ndarray | None = None

    def push(self, hops: np.ndarray, voiced: bool) -> np.ndarray | None:
        """One video frame's (4, 15) newest hops and its VAD decision -> the current code."""
        if voiced:
            self._hops.extend(np.asarray(hops, np.float32))
            self._frames_since_voice = 0
        else:
            self._frames_since_voice += 1
            if self._frames_since_voice >= self._forget_frames:
                self._hops.clear()
                self.code = None
        self._frames_since_update += 1
        if (
            voiced
            and self._frames_since_update >= self._update_frames
            and len(self._hops) >= self._min_hops
        ):
            self._frames_since_update = 0
            fresh = self._space.from_audio(np.stack(self._hops), trim=False)  # voiced only
            if self.code is None:
                self.code = fresh
            else:
                self.code = self._smoothing * self.code + (1.0 - self._smoothing) * fresh
        return self.code
