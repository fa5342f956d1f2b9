"""``evp train STAGE``: the training stages on a corpus built by ``evp data build``."""

import argparse
import json
import logging
from pathlib import Path

from engine.data.build import SHARED
from engine.training.names import DEFAULT_STEPS, LOSSES, STAGES

logger = logging.getLogger(__name__)


def _train(args: argparse.Namespace) -> int:
    from engine.model.checkpoint import load_checkpoint
    from engine.training.corpus import load_corpus
    from engine.training.stages import StageOptions, train_stage

    if args.stage == "lips":
        return _lips(args)
    if args.stage == "calibrate":
        return _calibrate(args)
    if args.from_checkpoint and args.stage == "all":
        raise SystemExit("evp train: --from applies to one stage, not 'all'")
    if args.data is None:
        raise SystemExit(f"evp train {args.stage}: --data CORPUS is required")
    corpus = load_corpus(args.data)
    options = StageOptions(
        steps=args.steps,
        batch=args.batch,
        lr=1e-3 if args.lr is None else args.lr,
        seed=args.seed,
        lookahead_hops=args.lookahead_hops,
        without=tuple(args.without),
    )
    stages = STAGES if args.stage == "all" else (args.stage,)
    out = None
    for stage in stages:
        out = train_stage(stage, corpus, args.run, options, start_from=args.from_checkpoint)
    info = load_checkpoint(out).info
    print(json.dumps({"checkpoint": str(out), "stages": info.get("stages", {})}, indent=2))
    return 0


def _lips(args: argparse.Namespace) -> int:
    from engine.data.speakers import HELDOUT_GROUPS
    from engine.model.checkpoint import load_checkpoint
    from engine.targets.expressions import expression_offsets
    from engine.training.lips import LipsOptions, train_lips
    from engine.training.talking import load_talking

    if args.lookahead_hops != 12 or args.without or args.batch:
        raise SystemExit(
            "evp train lips: the look-ahead comes from the starting checkpoint; "
            "--lookahead-hops, --without and --batch do not apply"
        )
    start = args.from_checkpoint or args.run / "landmarks.safetensors"
    if not start.is_file():
        raise SystemExit(
            f"evp train lips: no landmarks checkpoint at {start}; run `evp train landmarks` "
            "into --run first, or pass --from (e.g. engine/model/weights/evp-a2l.safetensors)"
        )
    clips = args.clips or [SHARED / "talking2", SHARED / "talking"]
    talking = load_talking(clips, shift=not args.no_offsets)
    given = {
        "steps": args.steps,
        "lr": args.lr,
        "lambda_opening": args.lambda_opening,
        "lambda_spread": args.lambda_spread,
        "content_dropout": args.content_dropout,
        "emotion_fraction": args.emotion_fraction,
        "expression_gain": args.expression_gain,
        "mouth_gain": args.mouth_gain,
    }
    options = LipsOptions(
        seed=args.seed,
        reinit=args.reinit,
        tune_content=not args.frozen_content,
        **{k: v for k, v in given.items() if v is not None},
    )
    expressions = expression_offsets(
        args.mead,
        exclude=HELDOUT_GROUPS,
        wild_dir=args.emotion_wild,
        neutral_dirs=tuple(clips) if args.emotion_wild else (),
    )
    out = train_lips(talking, args.run, options, start, expressions)
    stage = load_checkpoint(out).info["stages"]["lips"]
    summary = {k: stage[k] for k in ("steps", "seconds", "final_losses", "train_groups")}
    print(json.dumps({"checkpoint": str(out), **summary}, indent=2))
    return 0


def _strip(args: argparse.Namespace) -> int:
    import torch

    from engine.model.checkpoint import load_checkpoint, save_checkpoint

    checkpoint = load_checkpoint(args.source)
    save_checkpoint(checkpoint, args.out, networks=tuple(args.networks), dtype=torch.float16)
    print(f"{args.out}: {', '.join(args.networks)} as float16 ({args.out.stat().st_size} bytes)")
    return 0


def _calibrate(args: argparse.Namespace) -> int:
    from engine.model.calibration import calibrate
    from engine.model.checkpoint import load_checkpoint, save_checkpoint

    start = args.from_checkpoint or args.run / "lips.safetensors"
    if not start.is_file():
        raise SystemExit(
            f"evp train calibrate: no checkpoint at {start}; run `evp train lips` into --run "
            "first, or pass --from"
        )
    checkpoint = load_checkpoint(start)
    result = calibrate(checkpoint, args.ravdess)
    checkpoint.info["calibration"] = result | {"from": str(start)}
    out = args.run / "calibrate.safetensors"
    save_checkpoint(checkpoint, out)
    print(json.dumps({"checkpoint": str(out), **result}, indent=2))
    return 0


def add_train_commands(commands: argparse._SubParsersAction) -> None:
    train = commands.add_parser(
        "train",
        help="train the audio-to-landmark networks (resumable, seeded)",
        description="Stages run in order: "
        + ", ".join(f"{s} ({DEFAULT_STEPS[s]} steps)" for s in STAGES)
        + "; each starts from the previous stage's checkpoint in --run.",
    )
    train.add_argument("stage", choices=(*STAGES, "all", "lips", "calibrate"))
    train.add_argument("--data", type=Path, help="corpus from `evp data build` (not for lips)")
    train.add_argument("--run", type=Path, required=True, help="folder for checkpoints")
    train.add_argument("--steps", type=int, help="override the stage's step count")
    train.add_argument("--batch", type=int, help="override the stage's batch size")
    train.add_argument("--lr", type=float, help="default 1e-3 (lips: LipsOptions.lr)")
    train.add_argument("--seed", type=int, default=0)
    train.add_argument(
        "--lookahead-hops",
        type=int,
        default=12,
        help="MFCC look-ahead of the content window in 10 ms hops (12 = EVP, 4 = low latency)",
    )
    train.add_argument(
        "--without",
        action="append",
        default=[],
        choices=LOSSES,
        help="disentangle ablation: leave this loss out (repeatable)",
    )
    train.add_argument(
        "--from",
        dest="from_checkpoint",
        type=Path,
        help="start this stage from another run's checkpoint (e.g. ablations)",
    )
    lips = train.add_argument_group(
        "lips stage",
        "`evp train lips --run DIR`: fine-tunes the landmark LSTM (and Ec's last layers) of "
        "DIR/landmarks.safetensors (or --from) on tracked real speech; held-out speakers "
        "(engine/data/speakers.py) are never trained on. No --data needed.",
    )
    lips.add_argument(
        "--clips",
        type=Path,
        action="append",
        help="folder of talking clips with their own audio (repeatable; default: "
        "../shared/data/talking2 and talking)",
    )
    for name in (
        "lambda-opening",
        "lambda-spread",
        "content-dropout",
        "emotion-fraction",
        "expression-gain",
        "mouth-gain",
    ):
        key = name.replace("-", "_")
        lips.add_argument(f"--{name}", type=float, help=f"default: LipsOptions.{key}")
    lips.add_argument(
        "--reinit", action="store_true", help="fresh LSTM: no teacher pretraining (ablation)"
    )
    lips.add_argument(
        "--mead",
        type=Path,
        default=SHARED / "mead",
        help="MEAD clips whose expressions the emotions are taught (held-out identities "
        "of engine.data.speakers are left out)",
    )
    lips.add_argument(
        "--emotion-wild",
        type=Path,
        help="also average the expressions of these emotion_wild clips' identities, measured "
        "against the talking clips' population neutral (measured, not shipped: "
        "docs/models.md)",
    )
    lips.add_argument("--frozen-content", action="store_true", help="keep Ec as is (ablation)")
    lips.add_argument(
        "--no-offsets", action="store_true", help="train on clips as recorded (ablation)"
    )
    calibration = train.add_argument_group(
        "calibrate stage",
        "`evp train calibrate --run DIR`: temperature-scales Ce's probabilities on the "
        "RAVDESS speakers DIR/lips.safetensors (or --from) never trained on, and writes "
        "DIR/calibrate.safetensors (engine/model/calibration.py). No --data needed.",
    )
    calibration.add_argument(
        "--ravdess", type=Path, default=SHARED / "ravdess", help="RAVDESS-layout folder"
    )
    train.set_defaults(handler=_train)

    model = commands.add_parser("model", help="checkpoint utilities")
    model_commands = model.add_subparsers(dest="model", required=True)
    strip = model_commands.add_parser(
        "strip", help="keep some networks of a checkpoint, as float16 (small ablation files)"
    )
    strip.add_argument("source", type=Path)
    strip.add_argument("out", type=Path)
    strip.add_argument(
        "--networks",
        nargs="+",
        default=["content", "emotion", "decoder", "classifier"],
        help="networks to keep (default: those the disentanglement evaluation reads)",
    )
    strip.set_defaults(handler=_strip)
