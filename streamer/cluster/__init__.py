"""Rendering beyond one process: a video cut into segments (or many videos) rendered by Ray
actors and joined without re-encoding (``stylestream render ... --ray``).

Modules, one job each:
    :mod:`~streamer.cluster.plan`     where the segments of a video start and end (keyframes),
    :mod:`~streamer.cluster.segment`  one segment rendered with the ordinary render pipeline,
    :mod:`~streamer.cluster.join`     segment packets remuxed into one MP4 (exact times, audio),
    :mod:`~streamer.cluster.job`      the job folder and manifest that ``--resume`` reads,
    :mod:`~streamer.cluster.inputs`   one INPUT or many (a folder / glob of videos),
    :mod:`~streamer.cluster.runner`   the Ray actors, scheduling, retries, progress, summary,
    :mod:`~streamer.cli.ray_options`      the ``--ray`` options of ``render`` and ``bench render``,
    :mod:`~benchmarks.ray_scaling`    ``stylestream bench render --ray``.

Ray is an optional extra: it is imported only through :func:`import_ray` when a ``--ray`` run
starts (and by the actor code that runs inside Ray), so everything else works without it.
"""

from __future__ import annotations

from types import ModuleType

from adaattn_video.errors import StylestreamError

INSTALL_HINT = "pip install -e '.[ray]'"


class RayMissingError(StylestreamError, ImportError):
    """``--ray`` was asked for but Ray is not installed."""


class ClusterError(StylestreamError, RuntimeError):
    """A distributed render cannot go on (no worker left, a segment failed every retry, a
    cluster that cannot be reached)."""


def import_ray() -> ModuleType:
    """The ``ray`` module, or one clear error saying how to install it."""
    try:
        import ray
    except ImportError as err:
        raise RayMissingError(
            f"--ray needs Ray, which is not installed: {INSTALL_HINT} (or pip install 'ray>=2.9')"
        ) from err
    return ray


__all__ = ["INSTALL_HINT", "ClusterError", "RayMissingError", "import_ray"]
