"""``--region`` / ``--uncovered`` options of ``image`` and ``render``, and ``bench regions``.

A region on the command line is ``KEY=VALUE`` pairs separated by commas::

    --region style=wave.jpg,mask=person.png --region style=udnie.jpg,mask=person.png,invert=1

and in a ``--config`` YAML file a list under ``region:`` of the same strings or of mappings::

    region:
      - {style: wave.jpg, mask: person.png}
      - {style: udnie.jpg, mask: person.png, invert: true}

Keys: ``style`` (required), ``mask`` (picture / mask video / frames) or ``key`` (chroma-key
colour), ``tolerance``, ``softness``, ``invert``, ``style_mask``. Every mistake is one line.
"""

from __future__ import annotations

import argparse

from adaattn_video.masked_attention import UNCOVERED
from streamer.cli import ReplaceAppend
from streamer.cli.reports import report_result
from streamer.cli.values import OptionValueError
from streamer.regions.specs import RegionPlan, parse_region, parse_regions, region_from_mapping

__all__ = ["parse_region", "parse_regions", "region_from_mapping", "regions_from_args"]


def add_region_options(parser: argparse.ArgumentParser) -> None:
    """``--region`` (repeatable) and ``--uncovered``."""
    group = parser.add_argument_group("regions (spatial control)")
    group.add_argument(
        "--region", action=ReplaceAppend, metavar="style=IMG,mask=FILE[,invert=1]",
        help="a style for one region: mask=PNG (white = region), a mask video or frames in step "
        "with the input, or key=green|blue|#RRGGBB (chroma key; tolerance=, softness=); "
        "style_mask=PNG uses part of the style; repeat for more regions",
    )  # fmt: skip
    group.add_argument(
        "--uncovered", default="style", metavar="style|content",
        help="positions covered by no region: style (default: --style, or the first region's "
        "style) or content (left unstylized)",
    )  # fmt: skip


def regions_from_args(
    args: argparse.Namespace, *, input_uri: str | None = None, sequences: bool = True
) -> RegionPlan | None:
    """The checked :class:`RegionPlan` of ``--region`` / ``--uncovered``, or None without
    regions. Reads every mask and style file now (one-line errors before anything loads)."""
    specs = parse_regions(getattr(args, "region", None))
    uncovered = getattr(args, "uncovered", "style")
    if not specs:
        return None
    if uncovered not in UNCOVERED:
        raise OptionValueError(f"uncovered: expected {' or '.join(UNCOVERED)}, got {uncovered!r}")
    plan = RegionPlan(specs, uncovered)
    plan.check(input_uri=input_uri, sequences=sequences)
    return plan


# -- bench regions ----------------------------------------------------------------------------
def _configure_bench(parser: argparse.ArgumentParser) -> None:
    from adaattn_video.stylizer import PRECISIONS
    from streamer.cli.values import positive_int, wh_arg

    parser.add_argument(
        "--size", type=wh_arg, default=(360, 640), metavar="WxH", help="frame size (640x360)"
    )
    parser.add_argument("--regions", type=positive_int, default=2, help="regions (default 2)")
    parser.add_argument("--style-size", type=positive_int, default=256, help="style side (256)")
    parser.add_argument("--repeats", type=positive_int, default=3, help="timed frames (best of)")
    parser.add_argument("--device", default="auto", help="cpu, cuda, cuda:N or auto (default)")
    parser.add_argument("--precision", choices=sorted(PRECISIONS), default="fp32")
    parser.add_argument("--variant", choices=("video", "image"), default="video")
    parser.add_argument("--json", metavar="FILE", help="also write the result as JSON")
    parser.set_defaults(func=run_bench_regions)


def run_bench_regions(args: argparse.Namespace) -> int:
    from adaattn_video.stylizer import resolve_device
    from benchmarks.region_cost import RegionBenchConfig, run_region_benchmark

    try:
        config = RegionBenchConfig(
            size=args.size,
            regions=args.regions,
            style_size=args.style_size,
            repeats=args.repeats,
            device=resolve_device(args.device),
            precision=args.precision,
            variant=args.variant,
        )
    except ValueError as err:
        raise OptionValueError(str(err)) from err
    result = run_region_benchmark(config)
    return report_result(result, args.json)


def register(subparsers: argparse._SubParsersAction) -> None:
    from streamer.cli.bench_commands import add_bench_command

    add_bench_command(
        subparsers,
        "regions",
        "per-frame time without regions vs with N regions (random weights, masks half/half)",
        _configure_bench,
    )
