"""The ``--ray`` options of ``stylestream render`` and how they run.

``streamer/cli/render_commands.py`` calls :func:`add_ray_arguments` when it declares its options and
:func:`run_ray_render` when ``--ray`` was given; everything else lives here, so the render command
stays what it was without ``--ray``. The model, style and encoder options are ``render``'s own
(generated from :class:`~streamer.render.RenderConfig`); the Ray options are plain flags whose
``dest`` names (``ray``, ``workers``, ``segment_s``, ``resume``, ``shared_dir``) are also the
keys a ``--config`` YAML file may set.
"""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING

from adaattn_video.settings import StylizerSpec
from streamer import interrupts
from streamer.cli.reports import report_result
from streamer.cli.values import typed_value
from streamer.render import RenderConfig

if TYPE_CHECKING:
    from streamer.regions.specs import RegionPlan


def add_ray_arguments(parser: argparse.ArgumentParser) -> None:
    """``--ray [ADDRESS]``, ``--workers``, ``--segment-s``, ``--resume``, ``--shared-dir``."""
    group = parser.add_argument_group(
        "distributed (Ray; pip install -e '.[ray]')",
        "cut the input into segments rendered by Ray workers and joined without re-encoding; "
        "INPUT may be a folder or glob of videos (then -o is a folder)",
    )
    group.add_argument(
        "--ray", nargs="?", const="local", default=None, metavar="ADDRESS",
        help="render on Ray: local (this machine, the default), auto (the cluster `ray start` "
        "joined here) or HOST:6379",
    )  # fmt: skip
    group.add_argument(
        "--workers", default=None, metavar="N",
        help="Ray workers (default: one per GPU, else one per two CPUs)",
    )  # fmt: skip
    group.add_argument(
        "--segment-s", default=10.0, metavar="S",
        help="segment length in seconds, cut on keyframes (default 10)",
    )  # fmt: skip
    group.add_argument(
        "--resume", action="store_true",
        help="continue an interrupted --ray job: reuse its finished, verified segments",
    )  # fmt: skip
    group.add_argument(
        "--shared-dir", default=None, metavar="DIR",
        help="a folder every node mounts: workers write segments there instead of sending "
        "them through Ray's object store",
    )  # fmt: skip


def wants_ray(args: argparse.Namespace) -> bool:
    """True when ``--ray`` was given; the other Ray options without it are a one-line error."""
    if getattr(args, "ray", None) not in (None, False, ""):
        return True
    given = [
        flag
        for flag, name, kind, default in RAY_ONLY_OPTIONS
        if typed_value(args, name, kind, optional=True) not in (default, None, False)
    ]
    if given:
        from streamer.cluster.runner import ClusterConfigError

        raise ClusterConfigError(f"{', '.join(given)} apply to Ray renders only: add --ray")
    return False


RAY_ONLY_OPTIONS = (  # (flag, dest, type, default)
    ("--workers", "workers", int, None),
    ("--segment-s", "segment_s", float, 10.0),
    ("--resume", "resume", bool, False),
    ("--shared-dir", "shared_dir", str, None),
)


def run_ray_render(
    args: argparse.Namespace, config: RenderConfig, *, regions: RegionPlan | None = None
) -> int:
    """Render ``config`` on Ray as the flags say; prints the summary; returns the exit code."""
    from streamer.cluster.runner import (
        ClusterConfig,
        ClusterConfigError,
        interrupted_jobs,
        render_on_ray,
    )

    if regions is not None:
        raise ClusterConfigError(
            "--region is not supported with --ray yet: render regions without --ray"
        )
    if typed_value(args, "resume", bool) and config.overwrite:
        raise ClusterConfigError("give either --resume or --overwrite, not both")
    cluster = ClusterConfig(
        address="local" if args.ray is True else typed_value(args, "ray", str),
        workers=typed_value(args, "workers", int, optional=True),
        segment_s=typed_value(args, "segment_s", float),
        resume=typed_value(args, "resume", bool),
        shared_dir=typed_value(args, "shared_dir", str, optional=True),
    )
    try:
        result = render_on_ray(config, cluster, progress=typed_value(args, "progress", bool))
    except KeyboardInterrupt as err:
        kept = interrupted_jobs(config, cluster)
        where = f": finished segments are kept in {', '.join(map(str, kept))}" if kept else ""
        print(f"stylestream: interrupted{where}; rerun the same command with --resume to "
              "continue", file=sys.stderr)  # fmt: skip
        return err.exit_code if isinstance(err, interrupts.Interrupted) else 130
    print(result.summary())
    return 0


# -- bench render --ray -------------------------------------------------------------------------
def add_ray_bench_arguments(parser: argparse.ArgumentParser) -> None:
    """The ``--ray`` options of ``stylestream bench render``."""
    group = parser.add_argument_group("on Ray (pip install -e '.[ray]')")
    group.add_argument(
        "--ray", nargs="?", const="local", default=None, metavar="ADDRESS",
        help="benchmark segment-parallel rendering on Ray instead (local, auto or HOST:6379)",
    )  # fmt: skip
    group.add_argument(
        "--workers", type=int, nargs="+", default=[1, 2], metavar="N",
        help="worker counts to compare (default 1 2)",
    )  # fmt: skip
    group.add_argument("--seconds", type=float, default=4.0, help="clip length (default 4)")
    group.add_argument("--segment-s", type=float, default=1.0, help="segment length (default 1)")
    group.add_argument(
        "--join-seconds", type=float, default=60.0,
        help="video length the join alone is timed on (default 60)",
    )  # fmt: skip


def run_ray_bench(args: argparse.Namespace, spec: StylizerSpec) -> int:
    """``bench render --ray``: ``spec`` is the model of ``bench render``'s own options."""
    import dataclasses

    from adaattn_video.settings import resolve_device
    from benchmarks.ray_scaling import RayBenchConfig, run_ray_benchmark

    config = RayBenchConfig(
        size=tuple(args.size),
        seconds=args.seconds,
        workers=tuple(args.workers),
        segment_s=args.segment_s,
        address="local" if args.ray is True else args.ray,
        stylizer=dataclasses.replace(spec, device=resolve_device(spec.device)),
        join_seconds=args.join_seconds,
    )
    result = run_ray_benchmark(config)
    return report_result(result, args.json)
