"""``evp data``: the training corpus and the teacher's error on real clips."""

import argparse
from pathlib import Path


def _data_build(args: argparse.Namespace) -> int:
    import json

    from engine.data.build import BuildConfig, build

    config = BuildConfig(
        sentences=args.sentences,
        voices=args.voices,
        intensities=tuple(args.intensity or (0.5, 1.0)),
        seed=args.seed,
        ravdess=None if args.no_ravdess else str(args.ravdess),
        clips=str(args.clips),
        mead=str(args.mead),
    )
    report = build(config, args.out)
    print(
        json.dumps(
            {k: v for k, v in report.items() if k in ("records", "by_kind", "pairs", "skipped")},
            indent=2,
        )
    )
    print(f"evp: corpus written to {args.out} (report.md, trajectories.png)")
    return 0


def _teacher_error(args: argparse.Namespace) -> int:
    import json

    from engine.targets.teacher import teacher_error

    result = teacher_error(args.clips)
    if not args.per_clip:
        result.pop("per_clip")
    print(json.dumps(result, indent=2))
    return 0


def add_data_commands(commands: argparse._SubParsersAction) -> None:
    data = commands.add_parser("data", help="training and evaluation data")
    data_commands = data.add_subparsers(dest="data", required=True)
    from engine.data.build import SHARED

    corpus = data_commands.add_parser("build", help="build the training corpus (resumable)")
    corpus.add_argument("--out", type=Path, required=True)
    corpus.add_argument("--sentences", type=int, default=40, help="synthetic sentences (1-40)")
    corpus.add_argument("--voices", type=int, default=3, help="espeak-ng voices (1-6)")
    corpus.add_argument(
        "--intensity",
        type=float,
        action="append",
        default=None,
        help="emotion intensities (repeatable; default 0.5 and 1)",
    )
    corpus.add_argument("--seed", type=int, default=0)
    corpus.add_argument("--ravdess", type=Path, default=SHARED / "ravdess")
    corpus.add_argument("--no-ravdess", action="store_true")
    corpus.add_argument(
        "--clips",
        type=Path,
        default=SHARED / "talking",
        help="real talking clips for the viseme teacher",
    )
    corpus.add_argument(
        "--mead", type=Path, default=SHARED / "mead", help="MEAD clips for expression offsets"
    )
    corpus.set_defaults(handler=_data_build, intensity=None)

    teacher = data_commands.add_parser(
        "teacher-error", help="M-LD/M-LVD of the viseme targets against tracked real clips"
    )
    teacher.add_argument(
        "--clips", type=Path, required=True, help="folder of talking clips with audio"
    )
    teacher.add_argument("--per-clip", action="store_true")
    teacher.set_defaults(handler=_teacher_error)
