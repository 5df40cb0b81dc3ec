"""``stylestream render`` (a file, image sequence or lavfi source -> a stylized MP4 or frames)
and ``stylestream demo`` (a bundled clip, rendered; works offline on a fresh install)."""

from __future__ import annotations

import argparse
import logging
import signal
import sys
from pathlib import Path

from adaattn_video.errors import MissingWeightsError
from streamer.cli import ReplaceAppend, add_config_option
from streamer.cli.values import float_list, parse_wh, typed_value, wh_arg
from streamer.cluster.cli import add_ray_arguments, run_ray_render, wants_ray
from streamer.render import RenderConfig, RenderConfigError, RenderResult, parse_styles, render

log = logging.getLogger(__name__)


def add_render_arguments(parser: argparse.ArgumentParser) -> None:
    """The ``render`` options. Values are converted and checked after parsing
    (:func:`config_from_args`), so a bad flag and a bad YAML value give the same one-line error.
    """
    parser.add_argument(
        "input", nargs="?", metavar="INPUT",
        help="video file, image folder, frames/%%06d.png pattern, or lavfi:GRAPH "
        "(e.g. lavfi:testsrc2=size=320x240:rate=30:duration=5)",
    )  # fmt: skip
    parser.add_argument(
        "-o", "--output", metavar="OUT.mp4",
        help="output .mp4/.mov/.mkv, or a folder / %%06d.png pattern for PNG frames",
    )  # fmt: skip
    style = parser.add_argument_group("style")
    style.add_argument(
        "--style", action=ReplaceAppend, metavar="IMAGE",
        help="style image; repeat to mix several (see --style-weights)",
    )  # fmt: skip
    style.add_argument("--style-weights", nargs="+", metavar="W", help="one weight per --style")
    style.add_argument("--alpha", default=1.0, help="content strength 0..1 (1: full)")
    style.add_argument(
        "--style-size", default=512, metavar="N",
        help="resize style images so the longer side is N pixels (default 512)",
    )  # fmt: skip
    model = parser.add_argument_group("model")
    weights = model.add_mutually_exclusive_group()
    weights.add_argument(
        "--weights", metavar="W", help="a .safetensors checkpoint (default: cache)"
    )
    weights.add_argument(
        "--untrained", action="store_true",
        help="random weights: output is NOT a stylization (smoke tests, benchmarks)",
    )  # fmt: skip
    model.add_argument("--device", default="auto", help="cpu, cuda, cuda:N or auto (default)")
    model.add_argument(
        "--precision", choices=("auto", "fp32", "fp16", "bf16"), default="auto",
        help="convolution precision (auto: fp16 on CUDA, bf16 on CPUs with native bf16, else fp32)",
    )  # fmt: skip
    model.add_argument(
        "--batch-size", default=0, metavar="N",
        help="frames per model call (0: 4 on CUDA, 1 on CPU)",
    )  # fmt: skip
    model.add_argument("--size", metavar="WxH", help="output frame size (default: the input's)")
    encode = parser.add_argument_group("encoding (MP4 output)")
    encode.add_argument("--codec", default="libx264", help="video encoder (default libx264)")
    encode.add_argument("--crf", default=18, help="quality, lower is better (18)")
    encode.add_argument("--preset", default="veryfast", help="encoder speed preset (veryfast)")
    encode.add_argument("--pix-fmt", default="yuv420p", help="pixel format (yuv420p)")
    encode.add_argument(
        "--crash-safe", action=argparse.BooleanOptionalAction, default=True,
        help="fragmented MP4 that plays after a crash or kill (default on)",
    )  # fmt: skip
    encode.add_argument(
        "--fragment-s", default=1.0, metavar="S",
        help="longest MP4 fragment: the most video a crash can lose (default 1 s)",
    )  # fmt: skip
    part = parser.add_argument_group("input range")
    part.add_argument("--start", default=0.0, metavar="S", help="start at S seconds")
    part.add_argument("--duration", metavar="S", help="render S seconds")
    part.add_argument("--fps", metavar="F", help="frame rate of an image sequence (30)")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing output")
    parser.add_argument(
        "--progress", action=argparse.BooleanOptionalAction, default=True,
        help="show a progress bar (default on)",
    )  # fmt: skip
    add_ray_arguments(parser)  # streamer.cluster: --ray, --workers, --segment-s, --resume
    add_config_option(parser)


def config_from_args(args: argparse.Namespace) -> RenderConfig:
    """Flags + YAML values -> a checked :class:`RenderConfig` (bad values: one clear error)."""
    size = args.size
    if size is not None and not (isinstance(size, tuple) and len(size) == 2):
        size = parse_wh(size)  # from YAML: "640x360" or [640, 360]
    weights = float_list(args.style_weights, "style_weights")
    return RenderConfig(
        input=typed_value(args, "input", str, optional=True) or "",
        output=typed_value(args, "output", str, optional=True) or "",
        styles=parse_styles(args.style),
        style_weights=weights,
        weights=typed_value(args, "weights", str, optional=True),
        untrained=typed_value(args, "untrained", bool),
        size=size,
        style_size=typed_value(args, "style_size", int, optional=True),
        alpha=typed_value(args, "alpha", float),
        device=typed_value(args, "device", str),
        precision=typed_value(args, "precision", str),
        batch_size=typed_value(args, "batch_size", int),
        codec=typed_value(args, "codec", str),
        crf=typed_value(args, "crf", float, optional=True),
        preset=typed_value(args, "preset", str, optional=True),
        pix_fmt=typed_value(args, "pix_fmt", str),
        start_s=typed_value(args, "start", float),
        duration_s=typed_value(args, "duration", float, optional=True),
        fps=typed_value(args, "fps", float, optional=True),
        overwrite=typed_value(args, "overwrite", bool),
        crash_safe=typed_value(args, "crash_safe", bool),
        fragment_s=typed_value(args, "fragment_s", float),
    )


def exit_code(result: RenderResult) -> int:
    """0, or 128 + the signal number when interrupted (130 for Ctrl-C, 143 for SIGTERM)."""
    return 128 + result.interrupted_by if result.interrupted_by else 0


def run_render(args: argparse.Namespace) -> int:
    config = config_from_args(args)
    if wants_ray(args):
        return run_ray_render(args, config)
    result = render(config, progress=typed_value(args, "progress", bool))
    print(result.summary())
    if result.interrupted_by:
        print(
            f"stylestream: interrupted by {signal.Signals(result.interrupted_by).name}",
            file=sys.stderr,
        )
    return exit_code(result)


# -- demo --------------------------------------------------------------------------------------
DEMO_OUTPUT = "stylestream-demo.mp4"
DEMO_INPUT = "stylestream-demo-input.mp4"


def run_demo(args: argparse.Namespace) -> int:
    from adaattn_video.assets import DEFAULT_STYLE
    from adaattn_video.checkpoint import default_checkpoint
    from streamer.demo import make_demo_clip

    folder = Path(args.output_dir)
    if not folder.is_dir():
        raise RenderConfigError(f"output folder {folder} does not exist")
    height, width = args.size
    if height % 2 or width % 2:
        raise RenderConfigError(f"demo size must have even sides, got {width}x{height}")
    untrained = bool(args.untrained)
    if args.weights is None and not untrained and not default_checkpoint().is_file():
        untrained = True
        print(
            "stylestream demo: no trained weights found (looked for "
            f"{default_checkpoint()}); running with an UNTRAINED model so you can see the "
            "pipeline work. Its output is NOT a stylization.",
            file=sys.stderr,
        )
    clip = folder / DEMO_INPUT
    output = folder / DEMO_OUTPUT
    make_demo_clip(clip, size=(height, width), fps=args.fps, seconds=args.seconds)
    print(f"made {clip} ({width}x{height}, {args.seconds:g} s at {args.fps} fps, with a tone)")
    config = RenderConfig(
        input=str(clip),
        output=str(output),
        styles=(str(DEFAULT_STYLE),),
        weights=args.weights,
        untrained=untrained,
        style_size=256,
        device=args.device,
        overwrite=True,
    )
    try:
        result = render(config, progress=args.progress)
    except MissingWeightsError:  # pragma: no cover - the cache was emptied meanwhile
        raise
    print(result.summary())
    print(f"input clip: {clip}\nstylized:   {output}  (style: {DEFAULT_STYLE.name})")
    if untrained:
        print(
            "\n*** This was NOT a stylization: the model had random weights. ***\n"
            "Get the published weights with `stylestream weights download` (needs internet) or\n"
            "`stylestream weights import DIR_OR_ZIP` (the published .pth files), then run\n"
            "`stylestream demo` again."
        )
    return exit_code(result)


def register(subparsers: argparse._SubParsersAction) -> None:
    render_parser = subparsers.add_parser(
        "render",
        help="stylize a video file (or frames) into an MP4 with its audio",
        description="Stylize a video file, image sequence or lavfi source into an MP4 (audio "
        "copied unchanged, timing kept, playable even after a crash) or into PNG frames.",
    )
    add_render_arguments(render_parser)
    render_parser.set_defaults(func=run_render)

    demo = subparsers.add_parser(
        "demo",
        help="render a short bundled clip into ./stylestream-demo.mp4",
        description=f"Make a 3-second clip from a bundled photo ({DEMO_INPUT}) and render it "
        f"with the bundled style into {DEMO_OUTPUT} (both overwritten). Works offline: without "
        "weights it runs the untrained model and says so.",
    )
    demo.add_argument("--output-dir", default=".", metavar="DIR", help="where to write (.)")
    weights = demo.add_mutually_exclusive_group()
    weights.add_argument("--weights", metavar="W", help="a .safetensors checkpoint")
    weights.add_argument("--untrained", action="store_true", help="force random weights")
    demo.add_argument("--device", default="auto", help="cpu, cuda or auto (default)")
    demo.add_argument("--size", type=wh_arg, default=(144, 256), metavar="WxH",
                      help="clip size (default 256x144)")  # fmt: skip
    demo.add_argument("--fps", type=int, default=24, help="clip frame rate (24)")
    demo.add_argument("--seconds", type=float, default=3.0, help="clip length (3)")
    demo.add_argument("--progress", action=argparse.BooleanOptionalAction, default=True,
                      help="show a progress bar")  # fmt: skip
    demo.set_defaults(func=run_demo)
