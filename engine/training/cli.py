"""``evp train STAGE``: the training stages on a corpus built by ``evp data build``."""

import argparse
import json
import logging
from pathlib import Path

from engine.training.names import DEFAULT_STEPS, LOSSES, STAGES

logger = logging.getLogger(__name__)


def _train(args: argparse.Namespace) -> int:
    from engine.model.checkpoint import load_checkpoint
    from engine.training.corpus import load_corpus
    from engine.training.stages import StageOptions, train_stage

    if args.from_checkpoint and args.stage == "all":
        raise SystemExit("evp train: --from applies to one stage, not 'all'")
    corpus = load_corpus(args.data)
    options = StageOptions(
        steps=args.steps,
        batch=args.batch,
        lr=args.lr,
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


def _strip(args: argparse.Namespace) -> int:
    import torch

    from engine.model.checkpoint import load_checkpoint, save_checkpoint

    checkpoint = load_checkpoint(args.source)
    save_checkpoint(checkpoint, args.out, networks=tuple(args.networks), dtype=torch.float16)
    print(f"{args.out}: {', '.join(args.networks)} as float16 ({args.out.stat().st_size} bytes)")
    return 0


def add_train_commands(commands: argparse._SubParsersAction) -> None:
    train = commands.add_parser(
        "train",
        help="train the audio-to-landmark networks (resumable, seeded)",
        description="Stages run in order: "
        + ", ".join(f"{s} ({DEFAULT_STEPS[s]} steps)" for s in STAGES)
        + "; each starts from the previous stage's checkpoint in --run.",
    )
    train.add_argument("stage", choices=(*STAGES, "all"))
    train.add_argument("--data", type=Path, required=True, help="corpus from `evp data build`")
    train.add_argument("--run", type=Path, required=True, help="folder for checkpoints")
    train.add_argument("--steps", type=int, help="override the stage's step count")
    train.add_argument("--batch", type=int, help="override the stage's batch size")
    train.add_argument("--lr", type=float, default=1e-3)
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
