"""``stylestream render`` (a file, image sequence or lavfi source -> a stylized MP4 or frames)
and ``stylestream demo`` (a bundled clip, rendered; works offline on a fresh install)."""

from __future__ import annotations

import argparse
import logging
import signal
import sys
from pathlib import Path

from adaattn_video.errors import MissingWeightsError
from adaattn_video.settings import DEVICE_HELP, StylizerSpec
from configkit.convert import known_keys
from streamer.cli import add_config_option
from streamer.cli.options import add_dataclass_options
from streamer.cli.options import config_from_args as options_config
from streamer.cli.ray_options import add_ray_arguments, run_ray_render, wants_ray
from streamer.cli.region_options import add_region_options, regions_from_args
from streamer.cli.values import typed_value, wh_arg
from streamer.guard import refuse_overlap
from streamer.render import RenderConfig, RenderConfigError, RenderResult, render

log = logging.getLogger(__name__)


def add_render_arguments(parser: argparse.ArgumentParser) -> None:
    """The ``render`` options, generated from :class:`RenderConfig` and its
    :class:`~adaattn_video.settings.StylizerSpec`. Values are converted and checked after
    parsing (:func:`config_from_args`), so a bad flag and a bad YAML value give the same
    one-line error."""
    parser.add_argument(
        "input", nargs="?", metavar="INPUT",
        help="video file, image folder, frames/%%06d.png pattern, or lavfi:GRAPH "
        "(e.g. lavfi:testsrc2=size=320x240:rate=30:duration=5)",
    )  # fmt: skip
    parser.add_argument(
        "-o", "--output", metavar="OUT.mp4",
        help="output .mp4/.mov/.mkv, or a folder / %%06d.png pattern for PNG frames",
    )  # fmt: skip
    add_dataclass_options(
        parser.add_argument_group("model and style"), StylizerSpec,
        help_overrides={"size": "output frame size: WIDTHxHEIGHT, or N = longer side "
                        "(default: the input's)"},
    )  # fmt: skip
    add_dataclass_options(
        parser.add_argument_group("rendering"),
        RenderConfig,
        skip=("input", "output", *STYLIZER_KEYS),
    )
    parser.add_argument(
        "--progress", action=argparse.BooleanOptionalAction, default=True,
        help="show a progress bar (default on)",
    )  # fmt: skip
    add_region_options(parser)
    add_ray_arguments(parser)  # streamer.cluster: --ray, --workers, --segment-s, --resume
    add_config_option(parser)


STYLIZER_KEYS = tuple(known_keys(StylizerSpec))


def config_from_args(args: argparse.Namespace) -> RenderConfig:
    """Flags + YAML values -> a checked :class:`RenderConfig` (bad values: one clear error)."""
    return options_config(RenderConfig, args)


def exit_code(result: RenderResult) -> int:
    """0, or 128 + the signal number when interrupted (130 for Ctrl-C, 143 for SIGTERM)."""
    return 128 + result.interrupted_by if result.interrupted_by else 0


def run_render(args: argparse.Namespace) -> int:
    regions = regions_from_args(args, input_uri=typed_value(args, "input", str, optional=True))
    if regions is not None and not args.style:
        args.style = list(regions.default_styles)
    config = config_from_args(args)
    refuse_overlap(config.output, [args.config])  # the other inputs: in render()
    if wants_ray(args):
        return run_ray_render(args, config, regions=regions)
    result = render(config, progress=typed_value(args, "progress", bool), regions=regions)
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
        stylizer=StylizerSpec(
            styles=(str(DEFAULT_STYLE),),
            weights=args.weights,
            untrained=untrained,
            style_size=256,
            device=args.device,
        ),
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
    demo.add_argument("--device", default="auto", help=DEVICE_HELP)
    demo.add_argument("--size", type=wh_arg, default=(144, 256), metavar="WxH",
                      help="clip size (default 256x144)")  # fmt: skip
    demo.add_argument("--fps", type=int, default=24, help="clip frame rate (24)")
    demo.add_argument("--seconds", type=float, default=3.0, help="clip length (3)")
    demo.add_argument("--progress", action=argparse.BooleanOptionalAction, default=True,
                      help="show a progress bar")  # fmt: skip
    demo.set_defaults(func=run_demo)
