"""Model commands: ``weights import|download``, ``image``, ``info`` and ``bench model``.

Each command is a thin layer over a function of :mod:`adaattn_video` that tests call too; its
flags and YAML keys are the fields of its small config dataclass.
"""

from __future__ import annotations

import contextlib
import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from adaattn_video.checkpoint import load_checkpoint, read_checkpoint
from adaattn_video.errors import StylestreamError
from adaattn_video.image_io import read_image, write_image
from adaattn_video.resources import check_stylizer_memory, image_size
from adaattn_video.settings import DEVICE_HELP, StylizerSpec, resolve_device
from adaattn_video.stylizer import open_stylizer
from adaattn_video.weights import download_published, import_weights
from configkit.checks import at_least, positive
from configkit.convert import option
from streamer.cli.region_options import RegionOptions
from streamer.cli.reports import write_json_report
from streamer.cli.values import format_wh_list, wh_list
from streamer.guard import (
    atomic_output,
    guard_declared,
    guard_output,
    memory_settings,
    region_images,
)

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff")
Variant = Literal["video", "image"]


class UsageError(StylestreamError, ValueError):
    """A command-line value that parses but cannot be used (reported as one line, exit 2)."""


# -- weights -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class WeightsImportOptions:
    src: str = option(
        help="directory or .zip holding the published files",
        positional=True,
        metavar="SRC",
        role="input",
    )
    output: str | None = option(
        None, "where to write (default: the cache, where commands look without --weights)",
        short="-o", metavar="OUT.safetensors", role="output",
    )  # fmt: skip
    variant: Variant | None = option(
        None, "which model when SRC holds both packages (they share file names)"
    )
    overwrite: bool = option(False, "replace an existing -o file")
    config_file: str | None = option(None, cli=False, role="input")


def run_weights_import(args: WeightsImportOptions) -> int:
    if args.output is not None and Path(args.output).suffix != ".safetensors":
        raise UsageError(f"-o {args.output}: the output must be a .safetensors file")
    if args.output is not None:  # declared: SRC and the config file in, -o out
        inputs = guard_declared(args).inputs
        guard_output(args.output, inputs=inputs, overwrite=args.overwrite, kind="file")
    result = import_weights(args.src, args.output, variant=args.variant)
    sources = json.loads(result.metadata["source_files"])
    print(f"wrote {result.path} ({result.model.config.variant} model) from:")
    for source in sources:
        print(f"  {source['location']}  sha256 {source['sha256'][:16]}...")
    if args.output is None:
        print("it is in the cache: commands use it when no --weights is given")
    return 0


@dataclass(frozen=True)
class WeightsDownloadOptions:
    variant: Variant = option("video", "which published model")
    force: bool = option(False, "download again even if cached")


def run_weights_download(args: WeightsDownloadOptions) -> int:
    path = download_published(args.variant, force=args.force)
    print(f"wrote {path} ({args.variant} model); commands use it when no --weights is given")
    return 0


# -- image -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ImageOptions:
    """``image``: the content, the stylizer (styles at native size unless --style-size), the
    regions and the output."""

    content: str = option(
        help="content image (JPEG, PNG, ...)", positional=True, metavar="CONTENT", role="input"
    )
    stylizer: StylizerSpec = option(StylizerSpec(), flatten=True)
    regions: RegionOptions = option(RegionOptions(), flatten=True)
    output: str | None = option(
        None, "output image (required)", short="-o", metavar="OUT.png", role="output"
    )
    overwrite: bool = option(False, "replace an existing output")
    config_file: str | None = option(None, cli=False, role="input")


IMAGE_DEFAULTS = {"style_size": None}  # native size: what --help promises
IMAGE_HELP = {
    "size": "resize the content: N = longer side (aspect kept) or WIDTHxHEIGHT",
    "style_size": "resize styles to this longer side (default: native size)",
}


def run_image(args: ImageOptions) -> int:
    if not args.output:
        raise UsageError("expected -o OUT.png (or `output:` in --config)")
    output = Path(str(args.output))
    if output.suffix.lower() not in IMAGE_SUFFIXES:
        raise UsageError(
            f"-o {output}: unknown image type {output.suffix!r}; use one of {', '.join(IMAGE_SUFFIXES)}"
        )
    regions = args.regions.plan(sequences=False)  # masks checked before the model loads
    spec = args.stylizer
    if not spec.styles:
        raise UsageError("expected at least one --style IMAGE (or a style list in --config)")
    inputs = guard_declared(args).inputs  # regions and masks included
    guard_output(output, inputs=inputs, overwrite=args.overwrite, kind="file", make_parents=True)
    # From the header: a picture too big for memory is refused before it is decoded.
    settings = memory_settings(spec, image_size(args.content), 1, spec.device)
    masks = [] if regions is None else region_images(regions)  # decoded at native size too
    check_stylizer_memory(**{**settings, "styles": [*settings["styles"], *masks]})
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


@dataclass(frozen=True)
class InfoOptions:
    weights_file: str = option(
        help="a stylestream .safetensors file", positional=True, metavar="W", role="input"
    )
    json: bool = option(False, "print JSON")


def run_info(args: InfoOptions) -> int:
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
Precision = Literal["fp32", "fp16", "bf16"]


@dataclass(frozen=True)
class BenchModelOptions:
    sizes: tuple[tuple[int, int], ...] = option(
        ((256, 512), (360, 640)), "content sizes, WIDTHxHEIGHT", metavar="WxH", parse=wh_list,
        format=format_wh_list,
    )  # fmt: skip
    style_size: int = option(512, "style side", metavar="N", check=positive)
    large_style_size: int = option(
        1024, "a larger style timed for our form only, to show its cost is flat (0: skip)",
        metavar="N", check=at_least(0),
    )  # fmt: skip
    repeats: int = option(3, "timed frames per row (median)", metavar="N", check=positive)
    warmup: int = option(1, "untimed frames before each row", metavar="N", check=at_least(0))
    clock: Literal["wall", "cpu"] = option(
        "wall", "wall or cpu: process CPU time, for ratios on a busy machine (OMP_NUM_THREADS=1)"
    )
    device: str = option("auto", DEVICE_HELP)
    precision: tuple[Precision, ...] = option(
        ("fp32",), "our precision(s) for the --sizes rows (e.g. fp32 bf16); the published form "
        "always runs in fp32", metavar="P",
    )  # fmt: skip
    gpu_sizes: tuple[tuple[int, int], ...] = option(
        ((720, 1280), (1080, 1920)), "extra sizes measured on CUDA only", metavar="WxH",
        parse=wh_list, format=format_wh_list,
    )  # fmt: skip
    gpu_precision: Precision = option("fp16", "precision of the --gpu-sizes rows")
    no_reference: bool = option(False, "skip the published (quadratic) form, which is slow on CPU")
    variant: Variant = option("video", "video or the published image model")
    json: str | None = option(None, "also write the results as JSON", metavar="FILE", role="output")


def run_bench_model(args: BenchModelOptions) -> int:
    guard_declared(args)  # --json never onto an input
    from benchmarks.model_speed import ModelBenchConfig, format_table, run_model_benchmark

    try:
        config = ModelBenchConfig(
            sizes=args.sizes,
            style_size=args.style_size,
            large_style_size=args.large_style_size or None,
            repeats=args.repeats,
            warmup=args.warmup,
            clock=args.clock,
            device=resolve_device(args.device),
            precisions=args.precision,
            gpu_sizes=args.gpu_sizes,
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
