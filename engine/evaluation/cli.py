"""``evp eval``: emotion, landmark and disentanglement evaluations, printed as JSON."""

import argparse
import json
from pathlib import Path

from engine.data.build import SHARED
from engine.training.names import LOSSES


def _checkpoint(path: Path | None):
    from engine.model.checkpoint import load_checkpoint

    return load_checkpoint(path)


def _print(result: dict, as_json: bool, headline: str) -> None:
    if as_json:
        print(json.dumps(result, indent=2))
    else:
        print(headline)


def _emotion(args: argparse.Namespace) -> int:
    from engine.evaluation.emotion import evaluate_emotion, plot_confusion

    result = evaluate_emotion(_checkpoint(args.checkpoint), args.ravdess)
    if args.png:
        plot_confusion(result, args.png)
    _print(
        result,
        args.json,
        f"emotion accuracy {result['accuracy']:.3f} (chance {result['chance']:.3f}) on "
        f"{result['utterances']} utterances of {len(result['speakers'])} unseen speakers",
    )
    return 0


def _landmarks(args: argparse.Namespace) -> int:
    from engine.evaluation.landmarks import evaluate_landmarks
    from engine.model.emotion_space import EmotionSpace
    from engine.model.inference import LandmarkModel

    checkpoint = _checkpoint(args.checkpoint)
    result = evaluate_landmarks(
        LandmarkModel(checkpoint),
        EmotionSpace.from_checkpoint(checkpoint),
        args.clips,
        png=args.png,
    )
    if not args.per_clip:
        result.pop("per_clip")
    lines = [
        f"{name}: {metrics}"
        for name, metrics in [("model", result["model"]), *result["baselines"].items()]
    ]
    _print(result, args.json, "\n".join(lines))
    return 0


def _disentangle(args: argparse.Namespace) -> int:
    from engine.evaluation.disentangle import evaluate_disentangle
    from engine.model.checkpoint import DEFAULT_WEIGHTS
    from engine.training.corpus import load_corpus

    ablations = args.ablations or DEFAULT_WEIGHTS.parent / "ablations"
    # The ablation set has its own reference trained exactly like the variants (same
    # start, same steps); without one, the given (or shipped) checkpoint is the reference.
    reference = ablations / "full.safetensors"
    if args.checkpoint is None and reference.is_file():
        variants = {"full": _checkpoint(reference)}
    else:
        variants = {"full": _checkpoint(args.checkpoint)}
    for loss in LOSSES:
        path = ablations / f"without-{loss}.safetensors"
        if path.is_file():
            variants[f"without-{loss}"] = _checkpoint(path)
    result = evaluate_disentangle(variants, load_corpus(args.data), png=args.png)
    lines = [f"{name}: {metrics}" for name, metrics in result["variants"].items()]
    _print(result, args.json, "\n".join(lines))
    return 0


def _alignment(args: argparse.Namespace) -> int:
    from engine.face.align3d import evaluate_alignment

    result = evaluate_alignment(args.clips)
    if not args.per_clip:
        result.pop("per_clip")
    _print(result, args.json, f"3d: {result['3d']}\n2d: {result['2d']}")
    return 0


def _avatar(args: argparse.Namespace) -> int:
    from engine.avatar.bundle import AvatarLibrary
    from engine.evaluation.avatar import evaluate_avatar

    avatar = AvatarLibrary(args.avatars).get(args.avatar)
    result = evaluate_avatar(avatar, png=args.png)
    _print(result, args.json, ", ".join(f"{k} {v}" for k, v in result.items()))
    return 0


def _lipsync(args: argparse.Namespace) -> int:
    from engine.evaluation.lipsync import evaluate_lipsync
    from engine.model.emotion_space import EmotionSpace
    from engine.model.inference import LandmarkModel

    checkpoint = _checkpoint(args.checkpoint)
    result = evaluate_lipsync(
        LandmarkModel(checkpoint),
        EmotionSpace.from_checkpoint(checkpoint),
        args.clips,
        png=args.png,
    )
    lines = [
        f"{method}: r {f['r']} at {f['lag_ms']} ms, amplitude {f['amplitude']}, "
        f"M-LD {f['M-LD']}, M-LVD {f['M-LVD']}"
        for method, f in result["mean"].items()
    ]
    _print(result, args.json, f"{result['clips']} clips\n" + "\n".join(lines))
    return 0


def add_eval_commands(commands: argparse._SubParsersAction) -> None:
    evaluate = commands.add_parser("eval", help="evaluate the models and avatars")
    kinds = evaluate.add_subparsers(dest="eval", required=True)

    def common(parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--checkpoint", type=Path, help="default: the shipped weights")
        parser.add_argument("--json", action="store_true", help="print the full result as JSON")
        parser.add_argument("--png", type=Path, help="also draw the result into this PNG")

    emotion = kinds.add_parser("emotion", help="speaker-independent emotion accuracy on RAVDESS")
    emotion.add_argument(
        "--ravdess", type=Path, default=SHARED / "ravdess", help="RAVDESS-layout folder"
    )
    common(emotion)
    emotion.set_defaults(handler=_emotion)

    landmarks = kinds.add_parser("landmarks", help="M-LD/M-LVD/F-LD/F-LVD on real talking clips")
    landmarks.add_argument(
        "--clips", type=Path, default=SHARED / "talking", help="videos with audio"
    )
    landmarks.add_argument("--per-clip", action="store_true")
    common(landmarks)
    landmarks.set_defaults(handler=_landmarks)

    lipsync = kinds.add_parser(
        "lipsync", help="inner-lip opening vs tracked real speech: r, lag, amplitude, M-LD"
    )
    lipsync.add_argument(
        "--clips", type=Path, default=SHARED / "talking2", help="videos with their own audio"
    )
    common(lipsync)
    lipsync.set_defaults(handler=_lipsync)

    disentangle = kinds.add_parser("disentangle", help="Table 2 ablation on held-out speakers")
    disentangle.add_argument(
        "--data", type=Path, required=True, help="corpus from `evp data build`"
    )
    disentangle.add_argument(
        "--ablations",
        type=Path,
        help="folder of full.safetensors and without-LOSS.safetensors (default: shipped)",
    )
    common(disentangle)
    disentangle.set_defaults(handler=_disentangle)

    alignment = kinds.add_parser(
        "alignment", help="3D-aware alignment (eq. 8) against 2D pasting on real clips"
    )
    alignment.add_argument("--clips", type=Path, default=SHARED / "talking", help="videos")
    alignment.add_argument("--per-clip", action="store_true")
    alignment.add_argument("--json", action="store_true")
    alignment.set_defaults(handler=_alignment)

    from server.settings import DEFAULT_AVATARS

    avatar = kinds.add_parser(
        "avatar", help="SSIM/PSNR of an avatar's generator on its held-out frames"
    )
    avatar.add_argument("--avatar", default="default", help="avatar name")
    avatar.add_argument("--avatars", type=Path, default=DEFAULT_AVATARS, help="bundle directory")
    avatar.add_argument("--json", action="store_true", help="print the result as JSON")
    avatar.add_argument("--png", type=Path, help="write real (top) vs generated (bottom) crops")
    avatar.set_defaults(handler=_avatar)
