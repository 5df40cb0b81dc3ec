"""The ``--ray`` options of ``stylestream render`` and ``bench render``, and how they run.

``render`` flattens :class:`RayOptions` into its config and calls :func:`run_ray_render` when
``--ray`` was given; everything else lives here, so the render command stays what it was
without ``--ray``. The model, style and encoder options are ``render``'s own.
"""

from __future__ import annotations

import dataclasses
import sys
from dataclasses import dataclass
from typing import TYPE_CHECKING

from adaattn_video.settings import StylizerSpec
from configkit.checks import at_least, positive
from configkit.convert import option
from streamer import interrupts
from streamer.cli.reports import report_result
from streamer.render import RenderConfig

if TYPE_CHECKING:
    from streamer.regions.specs import RegionPlan

RAY_HELP = (
    "local (this machine, the default), auto (the cluster `ray start` joined here) or HOST:6379"
)


def _ray_address(value: object) -> str | None:
    """``--ray`` alone and YAML ``ray: true`` mean this machine; ``ray: false`` means no Ray."""
    if value is True:
        return "local"
    if value is False:
        return None
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"expected local, auto or HOST:PORT, got {value!r}")
    return value.strip()


@dataclass(frozen=True)
class RayOptions:
    """distributed (Ray; pip install -e '.[ray]'): cut the input into segments rendered by Ray
    workers and joined without re-encoding; INPUT may be a folder or glob of videos (then -o is
    a folder)."""

    ray: str | None = option(
        None, f"render on Ray: {RAY_HELP}", metavar="ADDRESS", const="local", parse=_ray_address
    )
    workers: int | None = option(
        None, "Ray workers (default: one per GPU, else one per two CPUs)", metavar="N",
        check=positive,
    )  # fmt: skip
    segment_s: float = option(
        10.0, "segment length in seconds, cut on keyframes", metavar="S", check=positive
    )
    resume: bool = option(
        False, "continue an interrupted --ray job: reuse its finished, verified segments"
    )
    shared_dir: str | None = option(
        None, "a folder every node mounts: workers write segments there instead of sending "
        "them through Ray's object store", metavar="DIR", role="none",
    )  # fmt: skip
    ray_timeout_s: float = option(
        30.0, "give up reaching a --ray HOST:PORT cluster after S seconds", metavar="S",
        check=positive,
    )  # fmt: skip

    def wanted(self) -> bool:
        """True with ``--ray``; the other Ray options without it are a one-line error."""
        if self.ray:
            return True
        defaults = RayOptions()
        given = [
            "--" + field.name.replace("_", "-")
            for field in dataclasses.fields(self)
            if field.name != "ray" and getattr(self, field.name) != getattr(defaults, field.name)
        ]
        if given:
            from streamer.cluster.runner import ClusterConfigError

            raise ClusterConfigError(f"{', '.join(given)} apply to Ray renders only: add --ray")
        return False


def run_ray_render(
    ray: RayOptions, config: RenderConfig, *, progress: bool, regions: RegionPlan | None = None
) -> int:
    """Render ``config`` on Ray as ``ray`` says; prints the summary; returns the exit code."""
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
    if ray.resume and config.overwrite:
        raise ClusterConfigError("give either --resume or --overwrite, not both")
    cluster = ClusterConfig(
        address=ray.ray or "local", workers=ray.workers, segment_s=ray.segment_s,
        resume=ray.resume, shared_dir=ray.shared_dir, connect_timeout_s=ray.ray_timeout_s,
    )  # fmt: skip
    try:
        result = render_on_ray(config, cluster, progress=progress)
    except KeyboardInterrupt as err:
        kept = interrupted_jobs(config, cluster)
        where = f": finished segments are kept in {', '.join(map(str, kept))}" if kept else ""
        print(f"stylestream: interrupted{where}; rerun the same command with --resume to "
              "continue", file=sys.stderr)  # fmt: skip
        return err.exit_code if isinstance(err, interrupts.Interrupted) else 130
    print(result.summary())
    if result.failed:  # the others were rendered; these are listed last, exit 2 like one input
        lines = "".join(f"\n  {line}" for line in result.failures())
        print(f"stylestream: error: {len(result.failed)} of {len(result.videos)} input(s) "
              f"failed:{lines}", file=sys.stderr)  # fmt: skip
        return 2
    return 0


# -- bench render --ray -------------------------------------------------------------------------
@dataclass(frozen=True)
class RayBenchOptions:
    """on Ray (pip install -e '.[ray]')."""

    ray: str | None = option(
        None, "benchmark segment-parallel rendering on Ray instead (local, auto or HOST:6379)",
        metavar="ADDRESS", const="local",
    )  # fmt: skip
    workers: tuple[int, ...] = option(
        (1, 2), "worker counts to compare", metavar="N", check=at_least(1)
    )
    seconds: float = option(4.0, "clip length", metavar="S", check=positive)
    segment_s: float = option(1.0, "segment length", metavar="S", check=positive)
    join_seconds: float = option(
        60.0, "video length the join alone is timed on", metavar="S", check=positive
    )


def run_ray_bench(
    ray: RayBenchOptions, size: tuple[int, int], spec: StylizerSpec, json_path: str | None
) -> int:
    """``bench render --ray``: ``spec`` is the model of ``bench render``'s own options."""
    from adaattn_video.settings import resolve_device
    from benchmarks.ray_scaling import RayBenchConfig, run_ray_benchmark

    config = RayBenchConfig(
        size=size,
        seconds=ray.seconds,
        workers=ray.workers,
        segment_s=ray.segment_s,
        address=ray.ray or "local",
        stylizer=dataclasses.replace(spec, device=resolve_device(spec.device)),
        join_seconds=ray.join_seconds,
    )
    result = run_ray_benchmark(config)
    return report_result(result, json_path)
