"""``stylestream export onnx`` and ``stylestream bench fidelity``.

Thin layers over :mod:`adaattn_video.export_onnx` and :mod:`benchmarks.fidelity`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from adaattn_video.errors import StylestreamError
from configkit.checks import at_least, positive
from configkit.convert import option
from streamer.cli.reports import write_json_report
from streamer.cli.values import format_wh, wh
from streamer.guard import guard_declared, guard_output


class ExportUsageError(StylestreamError, ValueError):
    """An export or fidelity option that parses but cannot be used."""


# -- export onnx -------------------------------------------------------------------------------
@dataclass(frozen=True)
class ExportOnnxOptions:
    output: str = option(help="the frame graph (the style graph: OUTPUT-style.onnx)",
                         short="-o", metavar="OUTPUT.onnx", role="output")  # fmt: skip
    weights: str | None = option(None, "a .safetensors checkpoint", positional=True, metavar="W",
                                 role="input")  # fmt: skip
    untrained: bool = option(
        False, "random weights (loud warning: not a stylization; for checks and benchmarks)"
    )
    overwrite: bool = option(False, "replace an existing OUTPUT")
    bench: tuple[int, int] | None = option(
        None, "then time onnxruntime against PyTorch (fp32, CPU) on one WxH frame",
        metavar="WxH", parse=wh, format=format_wh,
    )  # fmt: skip
    repeats: int = option(3, "timed rounds of --bench", metavar="N", check=positive)
    config_file: str | None = option(None, cli=False, role="input")

    def __post_init__(self) -> None:
        if self.weights and self.untrained:
            raise ExportUsageError("give either a checkpoint W or --untrained, not both")

    def io_paths(self) -> tuple[list[str], list[str]]:
        """The style graph written beside the frame graph is an output too."""
        from adaattn_video.export_onnx import style_graph_path

        return [], [str(style_graph_path(self.output))]


def run_export_onnx(args: ExportOnnxOptions) -> int:
    from adaattn_video.checkpoint import open_model
    from adaattn_video.export_onnx import compare_engines, export_onnx, require_onnx

    if not args.weights and not args.untrained:
        raise ExportUsageError("expected a checkpoint W (a .safetensors file) or --untrained")
    output = check_export_outputs(args)
    require_onnx("onnx", "onnxscript", *(["onnxruntime"] if args.bench else []))
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


def check_export_outputs(args: ExportOnnxOptions) -> Path:
    """Before the (long) export: no output is an input, none exists without --overwrite, each
    is a writable file in an existing folder (the frame graph's folder is created)."""
    paths = guard_declared(args, overwrite=args.overwrite)
    output = Path(args.output).expanduser()
    if not output.parent.exists():
        guard_output(output, inputs=paths.inputs, overwrite=args.overwrite, make_parents=True)
    for path in paths.outputs:
        guard_output(path, inputs=paths.inputs, overwrite=args.overwrite, kind="file")
    return output


# -- bench fidelity ----------------------------------------------------------------------------
Precision = Literal["auto", "fp32", "fp16", "bf16"]


@dataclass(frozen=True)
class BenchFidelityOptions:
    models: tuple[Literal["video", "image"], ...] = option(
        ("video", "image"), "the models compared", metavar="MODEL"
    )
    precision: tuple[Precision, ...] = option(
        ("auto",), "precisions compared against fp32 (auto: fp16 on CUDA, bf16 on CPUs with "
        "native bf16, else fp32)", metavar="P",
    )  # fmt: skip
    size: int = option(384, "photo longer side", metavar="N", check=at_least(16))
    device: str = option("auto", "cpu, cuda, cuda:N or auto")
    video_weights: str | None = option(
        None, "video checkpoint (default random)", metavar="W", role="input"
    )
    image_weights: str | None = option(
        None, "image checkpoint (default random)", metavar="W", role="input"
    )
    json: str | None = option(None, "also write the rows as JSON", metavar="FILE", role="output")
    config_file: str | None = option(None, cli=False, role="input")


def run_bench_fidelity(args: BenchFidelityOptions) -> int:
    guard_declared(args)  # --json never onto a checkpoint
    from adaattn_video.checkpoint import open_model
    from adaattn_video.config import IMAGE_MODEL, VIDEO_MODEL
    from adaattn_video.stylizer import resolve_device
    from benchmarks.fidelity import format_fidelity, measure_fidelity, rows_as_dicts

    device = resolve_device(args.device)
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
