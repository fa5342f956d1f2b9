"""`evp export onnx`, `evp export trt` and `evp export verify`."""

import argparse
import json
from pathlib import Path

from engine.avatar.bundle import DEFAULT_AVATARS
from engine.runtime.landmarks import SHIPPED_ONNX

DEFAULT_OUT = Path("build") / "onnx"


def _checkpoint_path(args: argparse.Namespace) -> Path:
    from engine.model.checkpoint import DEFAULT_WEIGHTS

    return Path(args.checkpoint) if args.checkpoint else DEFAULT_WEIGHTS


def _export(args: argparse.Namespace) -> int:
    from engine.model.checkpoint import load_checkpoint
    from trt_build.onnx_export import export_onnx

    path = _checkpoint_path(args)
    spec = export_onnx(load_checkpoint(path), path, args.out)
    for name, io in spec["models"].items():
        for kind in ("inputs", "outputs"):
            for value in io[kind]:
                print(f"{name}: {kind[:-1]} {value['name']} {value['shape']} {value['dtype']}")
    print(f"evp: wrote {len(spec['models'])} ONNX files and models.json to {args.out}")
    return 0


def _verify(args: argparse.Namespace) -> int:
    from engine.model.checkpoint import load_checkpoint
    from trt_build.verify import verify_onnx, verify_tensorrt

    path = _checkpoint_path(args)
    checkpoint = load_checkpoint(path)
    if args.trt:
        result = verify_tensorrt(checkpoint, path, args.dir, args.trt)
    else:
        result = verify_onnx(checkpoint, path, args.dir)
    if args.avatar:
        result["generator"] = _verify_generator(args)
        result["ok"] = result["ok"] and result["generator"]["ok"]
    print(json.dumps(result, indent=2))
    return 0 if result["ok"] else 1


def _verify_generator(args: argparse.Namespace) -> dict:
    from engine.avatar.bundle import AvatarLibrary
    from engine.runtime.generator import OnnxGenerator
    from engine.runtime.tensorrt import TensorRTGenerator
    from trt_build.verify import verify_generator

    avatar = AvatarLibrary(args.avatars).get(args.avatar)
    if args.trt:
        generator = TensorRTGenerator(avatar.generator_onnx, args.trt, args.avatar)
        return verify_generator(avatar, generator)
    return verify_generator(avatar, OnnxGenerator(avatar.generator_onnx))


def _trt(args: argparse.Namespace) -> int:
    from engine.runtime.landmarks import read_export
    from engine.runtime.onnx import io_spec
    from engine.runtime.tensorrt import default_engines_dir
    from trt_build.tensorrt_engine import build_engine

    out = args.out or default_engines_dir()
    spec = read_export(args.dir, args.checkpoint)
    jobs = [(args.dir / f"{name}.onnx", io) for name, io in spec["models"].items()]
    if args.avatar:
        from engine.avatar.bundle import AvatarLibrary

        library = AvatarLibrary(args.avatars)
        manifest = library.manifest(args.avatar)
        onnx_path = library.directory(args.avatar) / manifest.generator["onnx"]
        jobs.append((onnx_path, io_spec(onnx_path)))
    for onnx_path, io in jobs:
        path = build_engine(onnx_path, out, io, fp16=not args.fp32)
        print(f"evp: {onnx_path} -> {path}")
    return 0


def add_export_commands(commands: argparse._SubParsersAction) -> None:
    export = commands.add_parser("export", help="export the networks for the runtimes")
    steps = export.add_subparsers(dest="export", required=True)
    onnx = steps.add_parser("onnx", help="ONNX files of Ec, Ee, the identity MLP and one LSTM step")
    onnx.add_argument("--checkpoint", type=Path, help="default: the shipped weights")
    onnx.add_argument("--out", type=Path, default=DEFAULT_OUT)
    onnx.set_defaults(handler=_export)
    trt = steps.add_parser(
        "trt", help="TensorRT engines (FP16, batch 1-64) from the ONNX files; needs TensorRT 10"
    )
    trt.add_argument("--dir", type=Path, default=SHIPPED_ONNX, help="the ONNX export")
    trt.add_argument("--checkpoint", type=Path, help="what --dir was exported from")
    trt.add_argument(
        "--out", type=Path, help="engine cache (default: $EVP_TRT_DIR or ~/.cache/evp/trt)"
    )
    trt.add_argument("--avatar", help="also build this avatar's generator")
    trt.add_argument("--avatars", type=Path, default=DEFAULT_AVATARS)
    trt.add_argument("--fp32", action="store_true", help="no FP16 (if FP16 breaks parity)")
    trt.set_defaults(handler=_trt)
    verify = steps.add_parser(
        "verify", help="ONNX Runtime (or TensorRT engines) against PyTorch, with tolerances"
    )
    verify.add_argument("--checkpoint", type=Path, help="default: the shipped weights")
    verify.add_argument("--dir", type=Path, default=SHIPPED_ONNX, help="the ONNX export")
    verify.add_argument(
        "--trt", type=Path, metavar="ENGINES", help="verify the TensorRT engines here"
    )
    verify.add_argument("--avatar", help="also verify this avatar's generator (PSNR)")
    verify.add_argument("--avatars", type=Path, default=DEFAULT_AVATARS)
    verify.set_defaults(handler=_verify)
