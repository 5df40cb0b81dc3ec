"""``stylestream render`` (a file, image sequence or lavfi source -> a stylized MP4 or frames)
and ``stylestream demo`` (a bundled clip, rendered; works offline on a fresh install)."""

from __future__ import annotations

import signal
import sys
from dataclasses import dataclass
from pathlib import Path

from adaattn_video.errors import MissingWeightsError
from adaattn_video.resources import check_stylizer_memory
from adaattn_video.settings import DEVICE_HELP, StylizerSpec
from configkit.checks import positive
from configkit.convert import option
from streamer.cli.ray_options import RayOptions, run_ray_render
from streamer.cli.region_options import RegionOptions
from streamer.cli.values import format_wh, wh
from streamer.guard import guard_declared, memory_settings, region_images
from streamer.render import RenderConfig, RenderConfigError, RenderResult, render


@dataclass(frozen=True)
class RenderOptions:
    """``render``: the render itself (input, output, model, encoder), the progress bar, the
    regions and the Ray options."""

    render: RenderConfig = option(flatten=True)
    progress: bool = option(True, "show a progress bar")
    regions: RegionOptions = option(RegionOptions(), flatten=True)
    ray: RayOptions = option(RayOptions(), flatten=True)
    config_file: str | None = option(None, cli=False, role="input")


RENDER_HELP = {"size": "output frame size: WIDTHxHEIGHT, or N = longer side (default: the input's)"}


def exit_code(result: RenderResult) -> int:
    """0, or 128 + the signal number when interrupted (130 for Ctrl-C, 143 for SIGTERM)."""
    return 128 + result.interrupted_by if result.interrupted_by else 0


def run_render(args: RenderOptions) -> int:
    config = args.render
    regions = args.regions.plan(input_uri=config.input)
    guard_declared(args)  # every file it reads, regions included; exists: checked in render()
    if regions is not None:  # region pictures are decoded at native size: count them too
        spec = config.stylizer
        settings = memory_settings(spec, None, 1, spec.device)
        check_stylizer_memory(
            **{**settings, "styles": [*settings["styles"], *region_images(regions)]}
        )
    if args.ray.wanted():
        return run_ray_render(args.ray, config, progress=args.progress, regions=regions)
    result = render(config, progress=args.progress, regions=regions)
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


@dataclass(frozen=True)
class DemoOptions:
    output_dir: str = option(".", "where to write", metavar="DIR", role="output")
    weights: str | None = option(None, "a .safetensors checkpoint", metavar="W", role="input")
    untrained: bool = option(False, "force random weights")
    device: str = option("auto", DEVICE_HELP)
    size: tuple[int, int] = option((144, 256), "clip size", metavar="WxH", parse=wh,
                                   format=format_wh)  # fmt: skip
    fps: int = option(24, "clip frame rate", check=positive)
    seconds: float = option(3.0, "clip length", check=positive)
    progress: bool = option(True, "show a progress bar")

    def __post_init__(self) -> None:
        if self.weights is not None and self.untrained:
            raise RenderConfigError("give either --weights or --untrained, not both")


def run_demo(args: DemoOptions) -> int:
    from adaattn_video.assets import DEFAULT_STYLE
    from adaattn_video.checkpoint import default_checkpoint
    from streamer.demo import make_demo_clip

    guard_declared(args)
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
