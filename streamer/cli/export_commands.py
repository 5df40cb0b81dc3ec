"""``stylestream export onnx`` and ``stylestream bench fidelity``.

Thin layers over :mod:`adaattn_video.export_onnx` and :mod:`benchmarks.fidelity`.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from adaattn_video.errors import StylestreamError
from streamer.cli import add_config_option
from streamer.cli.reports import write_json_report


class ExportUsageError(StylestreamError, ValueError):
    """An export or fidelity option that parses but cannot be used."""


def _add_weights(parser: argparse.ArgumentParser, *, positional: bool) -> None:
    group = parser.add_mutually_exclusive_group()
    if positional:
        group.add_argument("weights", nargs="?", metavar="W", help="a .safetensors checkpoint")
    else:
        group.add_argument("--weights", metavar="W", help="a .safetensors checkpoint")
    group.add_argument(
        "--untrained", action="store_true", default=None,
        help="random weights (loud warning: not a stylization; for checks and benchmarks)",
    )  # fmt: skip


# -- export onnx -------------------------------------------------------------------------------
def run_export_onnx(args: argparse.Namespace) -> int:
    from adaattn_video.checkpoint import open_model
    from adaattn_video.export_onnx import compare_engines, export_onnx, require_onnx

    require_onnx("onnx", "onnxscript", *(["onnxruntime"] if args.bench else []))
    if not args.weights and not args.untrained:
        raise ExportUsageError("expected a checkpoint W (a .safetensors file) or --untrained")
    output = Path(args.output)
    if output.exists() and not args.overwrite:
        raise ExportUsageError(f"{output} exists; pass --overwrite to replace it")
    model = open_model(args.weights, untrained=bool(args.untrained))
    files = export_onnx(model, output)
    print(f"wrote {files.frame} (frames) and {files.style} (styles)")
    if args.bench:
        times = compare_engines(model, files.frame, tuple(args.bench), repeats=args.repeats)
        h, w = times.size
        print(
            f"{w}x{h} fp32 CPU, ms/frame (best of {args.repeats}): "
            f"PyTorch {times.pytorch_ms:.1f}, onnxruntime {times.onnxruntime_ms:.1f} "
            f"(onnxruntime / PyTorch = {times.onnxruntime_ms / times.pytorch_ms:.2f}); "
            f"max abs difference {times.max_abs_diff:.2e}"
        )
    return 0


def _configure_export(subparsers: argparse._SubParsersAction) -> None:
    from streamer.cli.values import wh_arg

    export = subparsers.add_parser("export", help="export the model for other runtimes (onnx)")
    formats = export.add_subparsers(dest="export_format", metavar="FORMAT", required=True)
    onnx = formats.add_parser(
        "onnx",
        help="the video model as ONNX: a frame graph taking a style's sums as inputs (one file "
        "for every style, any frame size) and a style graph beside it",
        description="Write OUTPUT (frames: content, style_weight, style_center, alpha -> "
        "stylized) and OUTPUT-style.onnx (style image -> style_weight, style_center); float32, "
        "dynamic batch, height and width (multiples of 4). Needs pip install -e '.[onnx]'.",
    )
    _add_weights(onnx, positional=True)
    onnx.add_argument("-o", "--output", required=True, metavar="OUTPUT.onnx")
    onnx.add_argument("--overwrite", action="store_true", help="replace an existing OUTPUT")
    onnx.add_argument(
        "--bench", type=wh_arg, metavar="WxH",
        help="then time onnxruntime against PyTorch (fp32, CPU) on one WxH frame",
    )  # fmt: skip
    onnx.add_argument("--repeats", type=int, default=3, help="timed rounds of --bench")
    add_config_option(onnx)
    onnx.set_defaults(func=run_export_onnx)


# -- bench fidelity ----------------------------------------------------------------------------
def run_bench_fidelity(args: argparse.Namespace) -> int:
    from adaattn_video.checkpoint import open_model
    from adaattn_video.config import IMAGE_MODEL, VIDEO_MODEL
    from adaattn_video.stylizer import resolve_device
    from benchmarks.fidelity import format_fidelity, measure_fidelity, rows_as_dicts

    device = resolve_device(args.device)
    if args.size < 16:
        raise ExportUsageError(f"--size must be >= 16 pixels, got {args.size}")
    weights = {"video": args.video_weights, "image": args.image_weights}
    configs = {"video": VIDEO_MODEL, "image": IMAGE_MODEL}
    rows = []
    for variant in args.models:
        path = weights[variant]
        model = (
            open_model(path) if path else open_model(None, untrained=True, config=configs[variant])
        )
        rows += measure_fidelity(model, variant, args.precision, device=device, size=args.size)
    print(
        f"against fp32 on {device}, bundled photos at {args.size} px (longer side); "
        "weights: " + ", ".join(f"{v} {weights[v] or 'random'}" for v in args.models)
    )
    print(format_fidelity(rows))
    if args.json:
        write_json_report(args.json, rows_as_dicts(rows))
    return 0


def _configure_fidelity(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--models", nargs="+", choices=("video", "image"), default=["video", "image"]
    )
    parser.add_argument(
        "--precision", nargs="+", choices=("auto", "fp32", "fp16", "bf16"), default=["auto"],
        help="precisions compared against fp32 (default auto: fp16 on CUDA, bf16 on CPUs with "
        "native bf16, else fp32)",
    )  # fmt: skip
    parser.add_argument("--size", type=int, default=384, help="photo longer side (default 384)")
    parser.add_argument("--device", default="auto", help="cpu, cuda, cuda:N or auto")
    parser.add_argument("--video-weights", metavar="W", help="video checkpoint (default random)")
    parser.add_argument("--image-weights", metavar="W", help="image checkpoint (default random)")
    parser.add_argument("--json", metavar="FILE", help="also write the rows as JSON")
    add_config_option(parser)
    parser.set_defaults(func=run_bench_fidelity)


def register(subparsers: argparse._SubParsersAction) -> None:
    from streamer.cli.bench_commands import add_bench_command

    _configure_export(subparsers)
    add_bench_command(
        subparsers,
        "fidelity",
        "PSNR and max/mean abs difference of each precision against fp32 on the bundled photos",
        _configure_fidelity,
    )
