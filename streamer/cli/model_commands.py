"""Model commands: ``weights import|download``, ``image``, ``info`` and ``bench model``.

Each command is a thin layer over a function of :mod:`adaattn_video` that tests call too.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import time
from pathlib import Path

from adaattn_video.checkpoint import load_checkpoint, read_checkpoint
from adaattn_video.errors import StylestreamError
from adaattn_video.image_io import read_image, write_image
from adaattn_video.resources import check_stylizer_memory, image_size
from adaattn_video.settings import DEVICE_HELP, PRECISIONS, StylizerSpec, resolve_device
from adaattn_video.stylizer import open_stylizer
from adaattn_video.weights import download_published, import_weights
from streamer.cli import add_config_option
from streamer.cli.options import add_dataclass_options
from streamer.cli.options import config_from_args as options_config
from streamer.cli.region_options import add_region_options, regions_from_args
from streamer.cli.reports import write_json_report
from streamer.cli.values import positive_int, wh_arg
from streamer.guard import atomic_output, command_inputs, guard_output, memory_settings

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff")


class UsageError(StylestreamError, ValueError):
    """A command-line value that parses but cannot be used (reported as one line, exit 2)."""


# -- weights -----------------------------------------------------------------------------------
def run_weights_import(args: argparse.Namespace) -> int:
    if args.output is not None and Path(args.output).suffix != ".safetensors":
        raise UsageError(f"-o {args.output}: the output must be a .safetensors file")
    if args.output is not None:
        guard_output(
            args.output, inputs=[args.src, args.config], overwrite=args.overwrite, kind="file"
        )
    result = import_weights(args.src, args.output, variant=args.variant)
    sources = json.loads(result.metadata["source_files"])
    print(f"wrote {result.path} ({result.model.config.variant} model) from:")
    for source in sources:
        print(f"  {source['location']}  sha256 {source['sha256'][:16]}...")
    if args.output is None:
        print("it is in the cache: commands use it when no --weights is given")
    return 0


def run_weights_download(args: argparse.Namespace) -> int:
    path = download_published(args.variant, force=args.force)
    print(f"wrote {path} ({args.variant} model); commands use it when no --weights is given")
    return 0


# -- image -------------------------------------------------------------------------------------
def run_image(args: argparse.Namespace) -> int:
    if not args.output:
        raise UsageError("expected -o OUT.png (or `output:` in --config)")
    output = Path(str(args.output))
    if output.suffix.lower() not in IMAGE_SUFFIXES:
        raise UsageError(
            f"-o {output}: unknown image type {output.suffix!r}; use one of {', '.join(IMAGE_SUFFIXES)}"
        )
    regions = regions_from_args(args, sequences=False)  # masks checked before the model loads
    if regions is not None and not args.style:
        args.style = list(regions.default_styles)
    spec = options_config(StylizerSpec, args)
    if not spec.styles:
        raise UsageError("expected at least one --style IMAGE (or a style list in --config)")
    inputs = command_inputs(args.content, spec.styles, spec.weights, args.config)
    guard_output(output, inputs=inputs, overwrite=args.overwrite, kind="file", make_parents=True)
    # From the header: a picture too big for memory is refused before it is decoded.
    check_stylizer_memory(**memory_settings(spec, image_size(args.content), 1, spec.device))
    content = read_image(args.content)  # (3, H, W) uint8; a bad path fails before the model loads
    start = time.perf_counter()
    stylizer = open_stylizer(spec)
    if regions is not None:
        stylizer = regions.attach(stylizer)
    out = stylizer(content.permute(1, 2, 0))  # (H, W, 3) uint8 tensor
    elapsed = time.perf_counter() - start
    with atomic_output(output) as partial:  # an older OUT stays until the new one is complete
        write_image(partial, out.permute(2, 0, 1).cpu())
    height, width = out.shape[:2]
    note = " (UNTRAINED random weights: not a stylization)" if spec.untrained else ""
    device, precision = stylizer.device, stylizer.config.precision
    print(f"wrote {output} ({width}x{height}) in {elapsed:.2f} s on {device} {precision}{note}")
    return 0


# -- info --------------------------------------------------------------------------------------
def checkpoint_info(path: str | Path) -> dict:
    """Config, metadata, tensor and parameter counts of a stylestream checkpoint (checked by
    rebuilding its model)."""
    tensors, metadata = read_checkpoint(path)
    model = load_checkpoint(path)
    parameters: dict[str, int] = {}
    for name, tensor in tensors.items():
        part = name.split(".")[0]
        parameters[part] = parameters.get(part, 0) + tensor.numel()
    meta = dict(metadata)
    if "source_files" in meta:
        with contextlib.suppress(json.JSONDecodeError):
            meta["source_files"] = json.loads(meta["source_files"])
    return {
        "file": str(path),
        "bytes": Path(path).stat().st_size,
        "model_config": json.loads(model.config.to_json()),
        "deepest_tap": model.config.deepest_tap,
        "size_multiple": model.size_multiple,
        "metadata": {k: v for k, v in meta.items() if k != "model_config"},
        "tensors": len(tensors),
        "parameters": parameters,
        "total_parameters": sum(parameters.values()),
    }


def run_info(args: argparse.Namespace) -> int:
    info = checkpoint_info(args.weights_file)
    if args.json:
        print(json.dumps(info, indent=2))
        return 0
    print(f"file: {info['file']} ({info['bytes'] / 2**20:.1f} MiB)")
    config = info["model_config"]
    print(
        "model: "
        + ", ".join(f"{k}={v}" for k, v in sorted(config.items()))
        + f" (encoder to {info['deepest_tap']}, sides padded to multiples of {info['size_multiple']})"
    )
    print("metadata:")
    for key, value in sorted(info["metadata"].items()):
        if key == "source_files" and isinstance(value, list):
            print("  source_files:")
            for source in value:
                print(
                    f"    {source.get('name')}: sha256 {source.get('sha256')} ({source.get('location')})"
                )
        else:
            print(f"  {key}: {value}")
    print(f"tensors: {info['tensors']}")
    print(f"parameters: {info['total_parameters'] / 1e6:.2f} M")
    for part, count in sorted(info["parameters"].items()):
        print(f"  {part}: {count / 1e6:.2f} M")
    return 0


# -- bench model -------------------------------------------------------------------------------
def add_bench_model_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--sizes", nargs="+", type=wh_arg, default=[(256, 512), (360, 640)], metavar="WxH",
        help="content sizes, WIDTHxHEIGHT (default: 512x256 640x360)",
    )  # fmt: skip
    parser.add_argument(
        "--style-size", type=positive_int, default=512, help="style side (default 512)"
    )
    parser.add_argument(
        "--large-style-size", type=int, default=1024,
        help="a larger style timed for our form only, to show its cost is flat (0: skip; default 1024)",
    )  # fmt: skip
    parser.add_argument(
        "--repeats", type=positive_int, default=3, help="timed frames per row (median)"
    )
    parser.add_argument("--warmup", type=int, default=1, help="untimed frames before each row")
    parser.add_argument(
        "--clock", choices=("wall", "cpu"), default="wall",
        help="wall (default) or cpu: process CPU time, for ratios on a busy machine (OMP_NUM_THREADS=1)",
    )  # fmt: skip
    parser.add_argument("--device", default="auto", help=DEVICE_HELP)
    parser.add_argument(
        "--precision", nargs="+", choices=sorted(PRECISIONS), default=["fp32"],
        help="our precision(s) for the --sizes rows (default fp32; e.g. fp32 bf16); the "
        "published form always runs in fp32",
    )  # fmt: skip
    parser.add_argument(
        "--gpu-sizes", nargs="*", type=wh_arg, default=[(720, 1280), (1080, 1920)], metavar="WxH",
        help="extra sizes measured on CUDA only (default 1280x720 1920x1080)",
    )  # fmt: skip
    parser.add_argument(
        "--gpu-precision", choices=sorted(PRECISIONS), default="fp16",
        help="precision of the --gpu-sizes rows (default fp16)",
    )  # fmt: skip
    parser.add_argument(
        "--no-reference", action="store_true",
        help="skip the published (quadratic) form, which is slow on CPU",
    )  # fmt: skip
    parser.add_argument("--variant", choices=("video", "image"), default="video")
    parser.add_argument("--json", metavar="FILE", help="also write the results as JSON")


def run_bench_model(args: argparse.Namespace) -> int:
    from benchmarks.model_speed import ModelBenchConfig, format_table, run_model_benchmark

    try:
        config = ModelBenchConfig(
            sizes=tuple(args.sizes),
            style_size=args.style_size,
            large_style_size=args.large_style_size or None,
            repeats=args.repeats,
            warmup=args.warmup,
            clock=args.clock,
            device=resolve_device(args.device),
            precisions=tuple(args.precision),
            gpu_sizes=tuple(args.gpu_sizes),
            gpu_precision=args.gpu_precision,
            reference=not args.no_reference,
            variant=args.variant,
        )
    except ValueError as err:
        if isinstance(err, StylestreamError):
            raise
        raise UsageError(str(err)) from err
    result = run_model_benchmark(config)
    print(format_table(result))
    if args.json:
        write_json_report(args.json, result.to_dict())
    return 0


def _register_bench(subparsers: argparse._SubParsersAction) -> None:
    from streamer.cli.bench_commands import add_bench_command

    parser = add_bench_command(
        subparsers, "model", "per-frame time of the published formulation vs ours (random weights)"
    )
    add_bench_model_arguments(parser)
    parser.set_defaults(func=run_bench_model)


# -- registration ------------------------------------------------------------------------------
def register(subparsers: argparse._SubParsersAction) -> None:
    weights = subparsers.add_parser("weights", help="get model weights: import or download")
    weights_commands = weights.add_subparsers(
        dest="weights_command", metavar="ACTION", required=True
    )

    imp = weights_commands.add_parser(
        "import",
        help="import the published .pth files (a directory or the downloaded .zip) into one "
        "safetensors file",
        description="Find vgg_normalised.pth and the latest_net_*.pth files under SRC (searched "
        "recursively; .zip/.tar packages are read in place), check every key and shape, and "
        "write one safetensors file.",
    )
    imp.add_argument("src", metavar="SRC", help="directory or .zip holding the published files")
    imp.add_argument(
        "-o", "--output", metavar="OUT.safetensors",
        help="where to write (default: the cache, where commands look without --weights)",
    )  # fmt: skip
    imp.add_argument(
        "--variant", choices=("video", "image"),
        help="which model when SRC holds both packages (they share file names)",
    )  # fmt: skip
    imp.add_argument("--overwrite", action="store_true", help="replace an existing -o file")
    add_config_option(imp)
    imp.set_defaults(func=run_weights_import)

    download = weights_commands.add_parser(
        "download",
        help="download the published weights from Google Drive and import them into the cache",
    )
    download.add_argument("--variant", choices=("video", "image"), default="video")
    download.add_argument("--force", action="store_true", help="download again even if cached")
    download.set_defaults(func=run_weights_download)

    image = subparsers.add_parser(
        "image",
        help="stylize one picture",
        description="Stylize CONTENT with one or more styles (weighted mix). Content and styles "
        "are used at their native size unless --size / --style-size say otherwise.",
    )
    image.add_argument("content", metavar="CONTENT", help="content image (JPEG, PNG, ...)")
    add_dataclass_options(
        image.add_argument_group("model and style"), StylizerSpec,
        defaults={"style_size": None},
        help_overrides={
            "size": "resize the content: N = longer side (aspect kept) or WIDTHxHEIGHT",
            "style_size": "resize styles to this longer side (default: native size)",
        },
    )  # fmt: skip
    add_region_options(image)
    image.add_argument("-o", "--output", metavar="OUT.png", help="output image (required)")
    image.add_argument("--overwrite", action="store_true", help="replace an existing output")
    add_config_option(image)
    image.set_defaults(func=run_image)

    info = subparsers.add_parser("info", help="show a checkpoint's model config and metadata")
    info.add_argument("weights_file", metavar="W", help="a stylestream .safetensors file")
    info.add_argument("--json", action="store_true", help="print JSON")
    info.set_defaults(func=run_info)

    _register_bench(subparsers)
