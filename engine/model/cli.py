"""``evp landmarks``: audio in, frontal landmarks out, with the emotion from any source of
the emotion space (the voice itself, a category, a blend, or another clip: paper Fig. 1)."""

import argparse
import json
from pathlib import Path

import numpy as np

from engine.constants import EMOTIONS, SAMPLE_RATE, VIDEO_FPS
from engine.errors import EngineError


def _emotion_code(args, space, audio: np.ndarray) -> tuple[np.ndarray, str]:
    from engine.wav import read_wav

    if args.emotion_from:
        return space.from_signal(
            read_wav(args.emotion_from, SAMPLE_RATE)
        ), f"from {args.emotion_from}"
    if args.blend:
        source, target, alpha = args.blend
        try:
            alpha = float(alpha)
        except ValueError:
            raise EngineError(f"--blend ALPHA must be a number in [0, 1], got {alpha!r}") from None
        code = space.blend(space.category(source), space.category(target), alpha)
        return code, f"{alpha} x {source} + (1 - {alpha}) x {target}"
    if args.emotion:
        return space.category(args.emotion, args.intensity), f"{args.emotion} at {args.intensity}"
    return space.from_signal(audio), "from the voice"


def _landmarks(args: argparse.Namespace) -> int:
    from engine.model.checkpoint import load_checkpoint
    from engine.model.emotion_space import EmotionSpace
    from engine.model.inference import LandmarkModel
    from engine.wav import read_wav

    checkpoint = load_checkpoint(args.checkpoint)
    model, space = LandmarkModel(checkpoint), EmotionSpace.from_checkpoint(checkpoint)
    audio = read_wav(args.audio, SAMPLE_RATE)
    code, source = _emotion_code(args, space, audio)
    windows, _ = model.windows(audio)
    landmarks = model.predict(windows, code, model.canonical_face)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    tmp = args.out.with_name(args.out.name + ".partial.npz")
    np.savez(tmp, landmarks=landmarks, fps=VIDEO_FPS, emotion_code=code)
    tmp.replace(args.out)
    if args.png:
        draw_sheet(landmarks, args.png, f"{args.audio.name}: emotion {source}")
    probabilities = space.probabilities(code)
    print(
        json.dumps(
            {
                "out": str(args.out),
                "frames": len(landmarks),
                "emotion": source,
                "classified_as": max(probabilities, key=probabilities.__getitem__),
            }
        )
    )
    return 0


def draw_sheet(landmarks: np.ndarray, path: Path, title: str, count: int = 8) -> None:
    """A strip of ``count`` evenly spaced frames drawn as face sketches."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from engine.constants import BROWS, EYES, JAW, MOUTH, NOSE

    picks = np.linspace(0, len(landmarks) - 1, min(count, len(landmarks))).astype(int)
    figure, axes = plt.subplots(1, len(picks), figsize=(2 * len(picks), 2.6), squeeze=False)
    for axis, k in zip(axes[0], picks, strict=True):
        face = landmarks[k]
        for part in (JAW, BROWS, NOSE, EYES, MOUTH):
            axis.plot(face[part.start : part.stop, 0], face[part.start : part.stop, 1], "k-", lw=1)
        axis.set_title(f"{k / VIDEO_FPS:.2f} s", fontsize=8)
        axis.invert_yaxis()
        axis.set_aspect("equal")
        axis.axis("off")
    figure.suptitle(title, fontsize=9)
    figure.tight_layout()
    figure.savefig(path, dpi=90)
    plt.close(figure)


def add_landmarks_command(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "landmarks",
        help="predict frontal landmarks for a speech file (.npz, optional PNG sheet)",
        description="The emotion comes from the voice unless --emotion, --blend or "
        "--emotion-from says otherwise.",
    )
    parser.add_argument("audio", type=Path, help="speech (WAV)")
    parser.add_argument("--out", type=Path, required=True, help="landmarks .npz (T, 68, 2)")
    parser.add_argument("--png", type=Path, help="also draw a strip of frames")
    parser.add_argument("--checkpoint", type=Path, help="default: the shipped weights")
    choice = parser.add_mutually_exclusive_group()
    choice.add_argument("--emotion", choices=EMOTIONS)
    choice.add_argument(
        "--blend",
        nargs=3,
        metavar=("SOURCE", "TARGET", "ALPHA"),
        help="alpha * SOURCE + (1 - alpha) * TARGET (categories)",
    )
    choice.add_argument("--emotion-from", type=Path, help="take the emotion from another clip")
    parser.add_argument("--intensity", type=float, default=1.0, help="with --emotion, 0..1")
    parser.set_defaults(handler=_landmarks)
