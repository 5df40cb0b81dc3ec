"""``stylestream bench ...``: benchmarks that print numbers; this module owns the group.

Any command module adds its benchmark with :func:`add_bench_command` from its own
``register(subparsers)``; the ``bench`` parser is created by whichever module asks first, so the
order of ``_COMMAND_MODULES`` does not matter. ``bench render`` lives here.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable

from adaattn_video.settings import StylizerSpec
from streamer.cli import add_config_option
from streamer.cli.options import add_dataclass_options
from streamer.cli.options import config_from_args as options_config
from streamer.cli.reports import report_result

_GROUP_ATTR = "_stylestream_bench_subparsers"


def bench_subparsers(subparsers: argparse._SubParsersAction) -> argparse._SubParsersAction:
    """The subparsers of the ``bench`` group in ``subparsers`` (created on first use)."""
    bench = subparsers.choices.get("bench")
    if bench is None:
        bench = subparsers.add_parser(
            "bench",
            help="benchmarks that print numbers (model, fidelity, render, live, train, serve, studio, regions)",
            description="Benchmarks that print numbers; ratios are measured in one process.",
        )
        group = bench.add_subparsers(dest="bench_command", metavar="BENCHMARK", required=True)
        setattr(bench, _GROUP_ATTR, group)
    group = getattr(bench, _GROUP_ATTR, None)
    if group is None:
        raise RuntimeError(
            "a `bench` command exists that was not made by streamer.cli.bench_commands"
        )
    return group


def add_speed_model_options(parser: argparse.ArgumentParser) -> None:
    """The "model" options of a speed benchmark: --weights, --untrained (the default without
    --weights: speed does not depend on the weights), --device, --precision and --style-size
    (256 by default). Read them back with :func:`speed_model_spec`."""
    add_dataclass_options(
        parser.add_argument_group("model"), StylizerSpec,
        only=("weights", "untrained", "device", "precision", "style_size"),
        defaults={"style_size": 256},
        help_overrides={"untrained": "random weights (the default here without --weights: "
                        "speed does not depend on the weights)"},
    )  # fmt: skip


def speed_model_spec(args: argparse.Namespace) -> StylizerSpec:
    """The :class:`StylizerSpec` of :func:`add_speed_model_options`' flags (random weights
    unless --weights is given)."""
    return options_config(StylizerSpec, args, extra={"untrained": args.weights is None})


def add_bench_command(
    subparsers: argparse._SubParsersAction,
    name: str,
    help: str,
    configure: Callable[[argparse.ArgumentParser], None] | None = None,
) -> argparse.ArgumentParser:
    """Add ``bench NAME``; ``configure(parser)`` (optional) adds its arguments and sets
    ``func``. Returns the new parser (callers may configure it themselves instead)."""
    parser = bench_subparsers(subparsers).add_parser(name, help=help, description=help)
    if configure is not None:
        configure(parser)
    return parser


# -- bench render ------------------------------------------------------------------------------
def _configure_render(parser: argparse.ArgumentParser) -> None:
    from streamer.cli.values import wh_arg

    parser.add_argument(
        "--size", type=wh_arg, default=(360, 640), metavar="WxH",
        help="frame size of the clip (default 640x360)",
    )  # fmt: skip
    parser.add_argument("--frames", type=int, default=8, help="clip length (default 8)")
    parser.add_argument(
        "--repeat", type=int, default=3,
        help="alternate (a) and (b) this many times; the fastest of each counts (default 3)",
    )  # fmt: skip
    parser.add_argument("--batch-size", type=int, default=0, help="frames per model call (0: auto)")
    parser.add_argument("--codec", default="libx264")
    parser.add_argument("--preset", default="veryfast")
    add_speed_model_options(parser)
    parser.add_argument("--json", metavar="FILE", help="also write the numbers as JSON")
    from streamer.cli.ray_options import add_ray_bench_arguments

    add_ray_bench_arguments(parser)  # --ray, --workers N..., --seconds, --segment-s
    add_config_option(parser)
    parser.set_defaults(func=run_bench_render)


def run_bench_render(args: argparse.Namespace) -> int:
    from benchmarks.render_overlap import RenderBenchConfig, run_render_benchmark

    spec = speed_model_spec(args)
    if getattr(args, "ray", None):
        from streamer.cli.ray_options import run_ray_bench

        return run_ray_bench(args, spec)

    config = RenderBenchConfig(
        size=tuple(args.size),
        frames=args.frames,
        repeat=args.repeat,
        batch_size=args.batch_size,
        stylizer=spec,
        codec=args.codec,
        preset=args.preset,
    )
    result = run_render_benchmark(config, progress=print)
    return report_result(result, args.json)


def register(subparsers: argparse._SubParsersAction) -> None:
    add_bench_command(
        subparsers,
        "render",
        "decode->stylize->encode: stage by stage vs pipelined, and the overlap efficiency",
        _configure_render,
    )
