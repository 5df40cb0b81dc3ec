"""The Ray side of a distributed render: the actor that renders segments, and how many actors
of which shape a cluster gets.

Per worker one actor (:class:`SegmentWorker`) holds the model and the encoded style(s) for the
whole job, so a segment costs only its frames. GPU clusters get one actor per GPU
(``num_gpus=1``); on CPUs the actors split the cores (``num_cpus`` each, and as many torch
threads).
"""

from __future__ import annotations

import os
import signal
import time
from typing import Any

from streamer.cluster import ClusterError
from streamer.cluster.plan import Segment
from streamer.cluster.segment import SegmentResult, render_segment
from streamer.render import RenderConfig


class SegmentWorker:
    """One Ray actor: the model and style(s) loaded once, then one segment per call.

    Runs with ``max_concurrency=2`` so :meth:`progress` answers while :meth:`render` works.
    """

    def __init__(self, config: RenderConfig, threads: int) -> None:
        import torch

        from adaattn_video.settings import resolve_device
        from streamer.render import build_stylizer

        began = time.perf_counter()
        torch.set_num_threads(max(1, threads))
        self.device = resolve_device(actor_device(config.stylizer.device))
        self.stylizer = build_stylizer(config, self.device)
        self.setup_s = time.perf_counter() - began
        self._current: tuple[int, int, int] | None = None  # (job key, segment, frames done)

    def info(self) -> dict[str, Any]:
        import ray

        return {"pid": os.getpid(), "device": self.device, "setup_s": self.setup_s,
                "node": ray.get_runtime_context().get_node_id()}  # fmt: skip

    def progress(self) -> tuple[int, int, int, int] | None:
        """(pid, job key, segment, frames done) of the segment being rendered, or None."""
        current = self._current
        return None if current is None else (os.getpid(), *current)

    def render(
        self,
        key: int,
        config: RenderConfig,
        segment: Segment,
        time_base: Any,
        shared_dir: str | None,
        kill_at: int | None,
    ) -> SegmentResult:
        self._current = (key, segment.index, 0)

        def monitor(snapshot: Any) -> None:
            self._current = (key, segment.index, snapshot.frames_out)
            if kill_at is not None and snapshot.frames_out >= kill_at:
                os.kill(os.getpid(), signal.SIGKILL)  # tests: a worker dying mid-segment

        try:
            return render_segment(
                config, segment, time_base, self.stylizer, shared_dir=shared_dir, monitor=monitor
            )
        finally:
            self._current = None


def actor_device(device: str) -> str:
    """The device inside an actor for the command's ``device``. Ray gives each GPU actor one
    GPU (``num_gpus=1``) and makes it the only visible one (CUDA_VISIBLE_DEVICES), so inside the
    actor it is always ``cuda:0``: an index such as ``cuda:1`` names a GPU of the machine the
    command ran on, and Ray, not the index, picks the actor's GPU."""
    return "cuda:0" if device.split(":")[0] == "cuda" else device


def connect_ray(ray: Any, address: str, *, timeout_s: float = 30.0) -> bool:
    """Start or join a Ray runtime; True when this call started it (then it is shut down).
    A ``HOST:PORT`` (or ``ray://HOST:PORT``) address is first reached with a plain TCP
    connection bounded by ``timeout_s``: Ray itself keeps retrying an unreachable address."""
    if ray.is_initialized():
        return False
    probe_address(address, timeout_s)
    options: dict[str, Any] = {"log_to_driver": False, "configure_logging": False}
    try:
        if address == "local":  # a new runtime here, even when `ray start` made one
            ray.init(address="local", include_dashboard=False, **options)
        else:
            ray.init(address=address, **options)
    except (ConnectionError, RuntimeError, ValueError) as err:
        raise ClusterError(
            f"cannot reach the Ray cluster at {address!r}: {err} (start one with `ray start "
            "--head`, or use --ray local)"
        ) from err
    return True


def probe_address(address: str, timeout_s: float) -> None:
    """Raise a one-line :class:`ClusterError` when ``HOST:PORT`` takes no TCP connection
    within ``timeout_s`` (``local`` and ``auto`` are not probed)."""
    import socket

    if address in ("local", "auto"):
        return
    host, sep, port = address.removeprefix("ray://").rpartition(":")
    if not sep or not port.isdigit():
        return  # Ray reports its own address errors
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=timeout_s):
            pass
    except OSError as err:
        reason = "timed out" if isinstance(err, TimeoutError) else (err.strerror or str(err))
        raise ClusterError(
            f"cannot reach the Ray cluster at {address!r} ({reason} within {timeout_s:g} s; "
            "start one with `ray start --head`, or use --ray local)"
        ) from err


def worker_shape(ray: Any, config: RenderConfig, wanted: int | None, segments: int) -> tuple:
    """(workers, num_cpus, num_gpus, torch threads) from the cluster's resources."""
    resources = ray.cluster_resources()
    cpus = float(resources.get("CPU", 1))
    gpus = int(resources.get("GPU", 0))
    device = config.stylizer.device
    if gpus and device != "cpu":
        workers = min(wanted or gpus, segments)
        return workers, 1, 1, max(1, int(cpus // max(workers, 1)))
    if device.startswith("cuda"):
        raise ClusterError(f"--device {device}: the Ray cluster has no GPU")
    workers = min(wanted or max(1, int(cpus // 2)), segments)
    num_cpus = cpus / workers if workers > cpus else max(1.0, float(int(cpus // workers)))
    return workers, num_cpus, 0, max(1, int(num_cpus))
