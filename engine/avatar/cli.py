"""``evp avatar``: build avatar bundles from a video or a photo, and quantize them."""

import argparse
import sys
from pathlib import Path

from engine.avatar.bundle import DEFAULT_AVATARS, AvatarLibrary
from engine.errors import AvatarError


def _avatar_build(args: argparse.Namespace) -> int:
    from engine.avatar.build import BuildOptions, build_avatar

    options = BuildOptions(
        steps=args.steps,
        size=args.size,
        seed=args.seed,
        source_note=args.source_note or "",
        licence=args.licence,
        force=args.force,
        max_seconds=args.max_seconds,
        device=args.device,
        face_share=args.face_share,
        **({} if args.expression_frames is None else {"expression_frames": args.expression_frames}),
    )
    args.avatars.mkdir(parents=True, exist_ok=True)
    path = build_avatar(args.source, args.name, args.avatars, options)
    if not args.no_int8:
        _quantize_or_say_why(AvatarLibrary(args.avatars).get(args.name))
    print(path)
    return 0


def _quantize_or_say_why(avatar) -> dict | None:
    from engine.avatar.quantize import quantize_generator

    try:
        report = quantize_generator(avatar)
    except AvatarError as e:
        print(f"evp avatar: {e}", file=sys.stderr)
        return None
    int8, fp32 = report["int8"], report["fp32"]
    print(
        f"evp avatar: INT8 generator for ONNX Runtime: held-out SSIM {int8['ssim']:.4f} "
        f"(FP32 {fp32['ssim']:.4f}), PSNR {int8['psnr']:.2f} dB (FP32 {fp32['psnr']:.2f})",
        file=sys.stderr,
    )
    return report


def _avatar_quantize(args: argparse.Namespace) -> int:
    import json

    report = _quantize_or_say_why(AvatarLibrary(args.avatars).get(args.name))
    if report is None:
        return 2
    print(json.dumps(report, indent=2))
    return 0


def add_avatar_commands(commands: argparse._SubParsersAction) -> None:
    avatar = commands.add_parser("avatar", help="build avatar bundles")
    avatar_commands = avatar.add_subparsers(dest="avatar", required=True)
    build = avatar_commands.add_parser(
        "build", help="build an avatar from a video (any fps; resampled to 25) or a photo"
    )
    build.add_argument("source", type=Path, help="video file or photo")
    build.add_argument("--name", required=True, help="avatar name: a-z, 0-9, '-', '_'")
    build.add_argument("--avatars", type=Path, default=DEFAULT_AVATARS, help="bundle directory")
    build.add_argument("--steps", type=int, default=1500, help="generator training steps")
    build.add_argument("--size", type=int, default=256, help="generator crop size, pixels")
    build.add_argument("--seed", type=int, default=0)
    build.add_argument(
        "--max-seconds", type=float, default=30.0, help="use at most this much video"
    )
    build.add_argument("--source-note", help="describe the source in the manifest")
    build.add_argument(
        "--licence", default="unspecified: the builder's own material", help="the source's licence"
    )
    build.add_argument(
        "--face-share",
        type=float,
        help="videos: crop to a square in which the face (brows to chin) fills this share of "
        "the height, as a video call frames it (0.2-0.8; default: the whole frame)",
    )
    build.add_argument(
        "--expression-frames",
        type=int,
        help="videos: training frames warped to expressions the clip never shows "
        "(default 64; 0: none)",
    )
    build.add_argument("--force", action="store_true", help="replace an avatar of the same name")
    build.add_argument(
        "--device", help="generator training device, e.g. cpu or cuda (default: cuda if available)"
    )
    build.add_argument(
        "--no-int8", action="store_true", help="skip the INT8 generator (engine.avatar.quantize)"
    )
    build.set_defaults(handler=_avatar_build)
    quantize = avatar_commands.add_parser(
        "quantize",
        help="add an INT8 generator for ONNX Runtime, kept only if held-out quality holds",
    )
    quantize.add_argument("name", help="avatar name")
    quantize.add_argument("--avatars", type=Path, default=DEFAULT_AVATARS, help="bundle directory")
    quantize.set_defaults(handler=_avatar_quantize)
