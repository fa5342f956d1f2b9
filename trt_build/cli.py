"""`evp export onnx` and `evp export verify` (TensorRT steps follow in the runtime issue)."""

import argparse
import json
from pathlib import Path

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
    from trt_build.verify import verify_onnx

    path = _checkpoint_path(args)
    result = verify_onnx(load_checkpoint(path), path, args.dir)
    print(json.dumps(result, indent=2))
    return 0 if result["ok"] else 1


def add_export_commands(commands: argparse._SubParsersAction) -> None:
    export = commands.add_parser("export", help="export the networks for the runtimes")
    steps = export.add_subparsers(dest="export", required=True)
    onnx = steps.add_parser("onnx", help="ONNX files of Ec, Ee, the identity MLP and one LSTM step")
    onnx.add_argument("--checkpoint", type=Path, help="default: the shipped weights")
    onnx.add_argument("--out", type=Path, default=DEFAULT_OUT)
    onnx.set_defaults(handler=_export)
    verify = steps.add_parser("verify", help="ONNX Runtime against PyTorch, with tolerances")
    verify.add_argument("--checkpoint", type=Path, help="default: the shipped weights")
    verify.add_argument("--dir", type=Path, default=DEFAULT_OUT)
    verify.set_defaults(handler=_verify)
