"""``evp eval``: emotion, landmark and disentanglement evaluations, printed as JSON."""

import argparse
import json
from pathlib import Path

from engine.data.build import SHARED
from engine.training.names import LOSSES


def _checkpoint(path: Path | None):
    from engine.model.checkpoint import load_checkpoint

    return load_checkpoint(path)


def _print(result: dict | list[dict], as_json: bool, headline: str) -> None:
    if as_json:
        print(json.dumps(result, indent=2))
    else:
        print(headline)


def _emotion(args: argparse.Namespace) -> int:
    from engine.evaluation.emotion import evaluate_emotion, plot_confusion
    from engine.model.calibration import calibrate
    from engine.model.emotion_space import temperature

    checkpoint = _checkpoint(args.checkpoint)
    result = evaluate_emotion(checkpoint, args.ravdess)
    result["calibration"] = calibrate(checkpoint, args.ravdess) | {
        "shipped_temperature": temperature(checkpoint)
    }
    if args.png:
        plot_confusion(result, args.png)
    _print(
        result,
        args.json,
        f"emotion accuracy {result['accuracy']:.3f} (chance {result['chance']:.3f}) on "
        f"{result['utterances']} utterances of {len(result['speakers'])} unseen speakers; "
        f"calibration error {result['calibration']['ece_before']:.3f} -> "
        f"{result['calibration']['ece_after']:.3f} (leave-one-speaker-out)",
    )
    return 0


#: Acted emotional speech among the talking clips (MEAD): reported apart from the
#: natural speech auto mode must not over-read.
ACTED = ("MEAD", "eamm")


def _auto_mode(args: argparse.Namespace) -> int:
    from engine.evaluation.emotion import evaluate_auto_mode
    from engine.model.emotion_space import EmotionSpace

    space = EmotionSpace.from_checkpoint(_checkpoint(args.checkpoint))
    files = args.file or sorted((SHARED / "speech").glob("*.wav")) + sorted(
        (SHARED / "talking2").glob("*.mp4")
    )
    missing = [str(f) for f in files if not Path(f).is_file()]
    if missing or not files:
        raise SystemExit(f"evp eval auto-mode: no such file: {', '.join(missing) or 'none given'}")
    acted = [f for f in files if any(tag in Path(f).name for tag in ACTED)]
    natural = [f for f in files if f not in acted]
    result = {"natural": evaluate_auto_mode(space, natural) if natural else None}
    result["acted"] = evaluate_auto_mode(space, acted) if acted else None
    lines = [
        f"{kind}: {r['files']} files, {r['seconds']} s; intensity below 0.3 "
        f"{r['near_neutral']:.1%} of the time, at most {r['max_intensity']}"
        for kind, r in result.items()
        if r is not None
    ]
    _print(result, args.json, "\n".join(lines))
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


def _trained_groups(args: argparse.Namespace, checkpoint) -> set[str]:
    """The speakers `evp eval lipsync` leaves out: those the checkpoint trained on, and
    those of --held-out-of's checkpoint (to score an older model on the same clips)."""
    if args.all_speakers:
        return set()
    groups = set(checkpoint.trained_groups)
    if args.held_out_of is not None:
        groups |= _checkpoint(args.held_out_of).trained_groups
    return groups


def _lipsync(args: argparse.Namespace) -> int:
    from engine.evaluation.lipsync import evaluate_lipsync
    from engine.model.emotion_space import EmotionSpace
    from engine.model.inference import LandmarkModel

    checkpoint = _checkpoint(args.checkpoint)
    result = evaluate_lipsync(
        LandmarkModel(checkpoint),
        EmotionSpace.from_checkpoint(checkpoint),
        args.clips or [SHARED / "talking2", SHARED / "talking"],
        png=args.png,
        trained_groups=_trained_groups(args, checkpoint),
    )
    lines = [
        f"{method}: r {f['r']} at {f['lag_ms']} ms, amplitude {f['amplitude']}, "
        f"M-LD {f['M-LD']}, M-LVD {f['M-LVD']}"
        for method, f in result["mean"].items()
    ]
    _print(result, args.json, f"{result['clips']} clips\n" + "\n".join(lines))
    return 0


#: Held-out speakers (engine.data.speakers) whose speech drives `evp eval rendered-lips`.
RENDER_CLIPS = (
    "talking2/deep_avsr_00004.mp4",
    "talking2/lia_driving2.mp4",
    "talking2/sadtalker_WDA_BobMenendez_000.mp4",
    "talking2/spectre_LRS3_00002.mp4",
    "talking/videoretalking_face_1.mp4",
)


def _rendered_lips(args: argparse.Namespace) -> int:
    from engine.avatar.bundle import AvatarLibrary
    from engine.evaluation.rendered_lips import evaluate_rendered_lips

    engine = _portrait_engine(args.checkpoint)
    clips = args.clip or [SHARED / name for name in RENDER_CLIPS]
    missing = [str(c) for c in clips if not Path(c).is_file()]
    if missing:
        raise SystemExit(f"evp eval rendered-lips: no such clip: {', '.join(missing)}")
    library = AvatarLibrary(args.avatars)
    results = [
        evaluate_rendered_lips(engine, library.get(name), clips, keep=args.keep)
        for name in args.avatar or ["default"]
    ]
    lines = [f"{r['avatar']}: {r['mean']}" for r in results]
    _print(results if len(results) > 1 else results[0], args.json, "\n".join(lines))
    return 0


#: A held-out speaker's speech (engine.data.speakers) for `evp eval expression`.
EXPRESSION_SPEECH = "talking2/lia_driving2.mp4"


def _portrait_engine(checkpoint: Path | None):
    from engine.pipeline.portrait import PortraitEngine
    from engine.runtime.loading import load_landmark_runtime

    if checkpoint is not None:
        return PortraitEngine(load_landmark_runtime("torch", checkpoint), "auto")
    return PortraitEngine.load()


def _expression(args: argparse.Namespace) -> int:
    from engine.avatar.bundle import AvatarLibrary
    from engine.evaluation.expression import evaluate_expression

    library = AvatarLibrary(args.avatars)
    avatars = [library.get(name) for name in args.avatar or ["default"]]
    result = evaluate_expression(
        _portrait_engine(args.checkpoint),
        avatars,
        args.speech,
        args.mead,
        keep=args.keep,
        png=args.png,
    )
    lines = [
        f"{name}: judged as asked {j['as_asked']}/{j['of']} at intensity 1 (neutral reads "
        f"{j['neutral_top']}); p(asked) above the neutral render's {j['lifted']}/"
        f"{j['of_others']}, rising with intensity {j['monotonic']}/{j['of_others']}; "
        f"landmarks: rendered mean cosine {row['rendered']['mean_cosine']}"
        for name, row in result["summary"].items()
        if (j := row["judge"])
    ]
    ceiling = result["judge_on_real_faces"]
    lines.append(
        f"the judge on real MEAD faces: {ceiling['as_labelled']}/{ceiling['of']} as labelled"
    )
    _print(result, args.json, "\n".join(lines))
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

    auto = kinds.add_parser(
        "auto-mode",
        help="what auto mode shows over time on natural (and acted) speech",
    )
    auto.add_argument(
        "--file",
        type=Path,
        action="append",
        help="speech or talking-clip file (repeatable; default: ../shared/data/speech and "
        "talking2; MEAD clips are reported apart as acted speech)",
    )
    auto.add_argument("--checkpoint", type=Path, help="default: the shipped weights")
    auto.add_argument("--json", action="store_true", help="print the full result as JSON")
    auto.set_defaults(handler=_auto_mode)

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
        "--clips",
        type=Path,
        action="append",
        help="folder of videos with their own audio (repeatable; default: talking2 and "
        "talking under ../shared/data). Speakers the model trained on are skipped",
    )
    lipsync.add_argument(
        "--held-out-of",
        type=Path,
        metavar="CHECKPOINT",
        help="also skip the speakers this checkpoint trained on (e.g. score a teacher-only "
        "checkpoint on the shipped model's held-out clips)",
    )
    lipsync.add_argument(
        "--all-speakers",
        action="store_true",
        help="also score speakers the model trained on (not a held-out figure)",
    )
    common(lipsync)
    lipsync.set_defaults(handler=_lipsync)

    from engine.avatar.bundle import DEFAULT_AVATARS

    rendered = kinds.add_parser(
        "rendered-lips",
        help="track the avatar's rendered mouth while real speech drives it: r, range",
    )
    rendered.add_argument(
        "--avatar", action="append", help="avatar name (repeatable; default: default)"
    )
    rendered.add_argument(
        "--clip",
        type=Path,
        action="append",
        help="talking clip whose speech drives the avatar and whose speaker sets the "
        "range (repeatable; default: five held-out clips)",
    )
    rendered.add_argument("--avatars", type=Path, default=DEFAULT_AVATARS, help="bundle directory")
    rendered.add_argument("--keep", type=Path, help="keep the rendered videos in this folder")
    rendered.add_argument("--checkpoint", type=Path, help="default: the shipped weights")
    rendered.add_argument("--json", action="store_true", help="print the result as JSON")
    rendered.set_defaults(handler=_rendered_lips)

    expression = kinds.add_parser(
        "expression",
        help="each emotion's predicted and rendered face against real MEAD expressions",
    )
    expression.add_argument(
        "--avatar", action="append", help="avatar name (repeatable; default: default)"
    )
    expression.add_argument(
        "--avatars", type=Path, default=DEFAULT_AVATARS, help="bundle directory"
    )
    expression.add_argument(
        "--speech",
        type=Path,
        default=SHARED / EXPRESSION_SPEECH,
        help="speech that drives every render (default: a held-out speaker's clip)",
    )
    expression.add_argument(
        "--mead", type=Path, default=SHARED / "mead", help="MEAD clips: the reference"
    )
    expression.add_argument("--keep", type=Path, help="keep the rendered videos in this folder")
    common(expression)
    expression.set_defaults(handler=_expression)

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

    avatar = kinds.add_parser(
        "avatar", help="SSIM/PSNR of an avatar's generator on its held-out frames"
    )
    avatar.add_argument("--avatar", default="default", help="avatar name")
    avatar.add_argument("--avatars", type=Path, default=DEFAULT_AVATARS, help="bundle directory")
    avatar.add_argument("--json", action="store_true", help="print the result as JSON")
    avatar.add_argument("--png", type=Path, help="write real (top) vs generated (bottom) crops")
    avatar.set_defaults(handler=_avatar)
