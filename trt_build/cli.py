"""`evp export onnx`, `evp export trt` and `evp export verify`."""

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


def _trt(args: argparse.Namespace) -> int:
    from trt_build.onnx_export import SPEC_FILE
    from trt_build.tensorrt_engine import build_engine

    spec_path = args.dir / SPEC_FILE
    if not spec_path.is_file():
        from engine.errors import EngineError

        raise EngineError(f"no {SPEC_FILE} in {args.dir}: run `evp export onnx --out {args.dir}`")
    spec = json.loads(spec_path.read_text())
    for name, io in spec["models"].items():
        path = build_engine(args.dir / f"{name}.onnx", args.out, io, fp16=not args.fp32)
        print(f"evp: {name} -> {path}")
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
    trt.add_argument("--dir", type=Path, default=DEFAULT_OUT, help="the ONNX export")
    trt.add_argument("--out", type=Path, default=Path("build") / "trt")
    trt.add_argument("--fp32", action="store_true", help="no FP16 (if FP16 breaks parity)")
    trt.set_defaults(handler=_trt)
    verify = steps.add_parser("verify", help="ONNX Runtime against PyTorch, with tolerances")
    verify.add_argument("--checkpoint", type=Path, help="default: the shipped weights")
    verify.add_argument("--dir", type=Path, default=DEFAULT_OUT)
    verify.set_defaults(handler=_verify)
