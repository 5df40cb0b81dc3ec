"""``stylestream serve`` assembled: the model, the publisher, the streams, the scheduler, the
control endpoint and the status line (:func:`run_serve`; :class:`StreamServer` for tests).

The control commands (add/remove/list-streams, ``live``'s commands aimed at one stream) are
:mod:`streamer.serve.stream_requests`; :meth:`StreamServer.handle` carries out one decoded request.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from adaattn_video.errors import StylestreamError
from adaattn_video.mixed_batch import check_batchable
from adaattn_video.model import StyleTransferModel
from adaattn_video.resources import check_stylizer_memory
from adaattn_video.settings import StylizerSpec
from adaattn_video.stylizer import open_spec_model, open_stylizer
from streamer import interrupts
from streamer.frames import FrameSink, FrameSource
from streamer.guard import guard_declared, memory_settings, region_images
from streamer.regions.switch import RegionSwitch
from streamer.serve.config import ServeConfig, StreamSpec
from streamer.serve.scheduler import Scheduler
from streamer.serve.stream import RATE_WINDOW_S, StreamRuntime
from streamer.serve.stream_requests import serve_handlers
from streamer.stats import latency_percentiles
from streamer.zeromq.control.protocol import ControlRequestError, Json
from streamer.zeromq.control.server import ControlServer
from streamer.zeromq.publisher import ZmqSink, ZmqSinkConfig

log = logging.getLogger(__name__)


class StreamServer:
    """The model, the publisher and the streams; thread-safe add/remove/list/status.

    Use as a context manager (``close()`` stops every stream and closes the sockets).
    """

    def __init__(self, config: ServeConfig, *, model: StyleTransferModel | None = None) -> None:
        self.config = config
        self.spec = config.stylizer.resolved()  # device and precision for this machine
        device = self.spec.device
        if config.curve_keys_dir is not None:
            from streamer.zeromq.curve import load_server_keys

            load_server_keys(config.curve_keys_dir)
        if model is None:
            model = open_spec_model(self.spec)
        check_batchable(model)
        self.model = model
        self._lock = threading.RLock()  # guards the stream registry
        self._streams: dict[str, StreamRuntime] = {}
        self._reserved: set[str] = set()
        self.wake = threading.Event()
        self.publisher: ZmqSink | None = None
        self.control: ControlServer | None = None
        self.started = time.monotonic()
        self.handlers = serve_handlers(self)
        if config.zmq is not None:
            self.publisher = ZmqSink(
                ZmqSinkConfig(
                    config.zmq,
                    publish=config.publish,
                    allow_remote_bind=config.allow_remote_bind,
                    curve_keys_dir=config.curve_keys_dir,
                )
            )
        import torch

        self.scheduler = Scheduler(
            self.model,
            torch.device(device),
            self.streams,
            max_batch=config.max_batch,
            wake=self.wake,
        )

    # -- streams ----------------------------------------------------------------------------
    def streams(self) -> list[StreamRuntime]:
        with self._lock:
            return list(self._streams.values())

    def stream(self, name: str | None) -> StreamRuntime:
        """The stream named ``name`` (a control request's ``stream``; None: not named)."""
        with self._lock:
            known = ", ".join(sorted(self._streams)) or "none"
            if name is None:
                raise ControlRequestError(
                    f"this is a serve: name the stream ('stream', or --stream NAME); "
                    f"streams: {known}"
                )
            if name not in self._streams:
                raise ControlRequestError(f"no stream named {name!r} (streams: {known})")
            return self._streams[name]

    def list_streams(self) -> list[Json]:
        """Every stream's settings (the YAML keys, current regions included; output URLs
        masked), state, error and outputs' status."""
        return [{**stream.spec.as_dict(), "state": stream.state, "error": stream.error,
                 "outputs": stream.standard_outputs.status_dicts()}
                for stream in self.streams()]  # fmt: skip

    def add_stream(
        self,
        spec: StreamSpec,
        *,
        source: FrameSource | None = None,
        outputs: Sequence[FrameSink] = (),
    ) -> StreamRuntime:
        """Encode its style, create its recording, start its threads. Errors raise and leave
        nothing behind (the source itself is opened by the stream's reader thread: a bad URL
        shows as state ``failed`` with the reason, the server goes on). ``source`` / ``outputs``:
        see :class:`StreamRuntime` (a push-fed stream, extra sinks). Regions: their files are
        read and their styles encoded here (a missing mask raises)."""
        spec = spec.complete(self.spec)
        plan = spec.regions()
        if plan is not None:
            plan.check(sequences=False)
        guard_declared(spec, self.spec)  # its record vs its source, styles, regions, weights
        stylizer_spec = spec.stylizer(self.spec)
        masks = [] if plan is None else region_images(plan)
        self._check_memory(stylizer_spec, None, masks)
        with self._lock:
            if spec.name in self._streams or spec.name in self._reserved:
                raise ControlRequestError(f"a stream named {spec.name!r} exists already")
            self._reserved.add(spec.name)  # the style encodes outside the lock: no stall
        try:
            stylizer = open_stylizer(stylizer_spec, model=self.model)  # the model is shared
            runtime = StreamRuntime(
                spec,
                RegionSwitch(stylizer, plan),  # every stream takes set-regions
                self.publisher,
                queue_frames=self.config.queue_frames,
                overwrite=self.config.overwrite,
                on_frame=self.wake,
                source=source,
                outputs=outputs,
                check_first=lambda frame: self._check_memory(
                    stylizer_spec, frame.image.shape[:2], masks
                ),
            )
            with self._lock:
                self._streams[spec.name] = runtime
        finally:
            with self._lock:
                self._reserved.discard(spec.name)
        runtime.start()
        log.info("stream %s added: %s, style %s", spec.name, spec.source, runtime.stylizer.style_id)
        return runtime

    def _check_memory(
        self, spec: StylizerSpec, size: tuple[int, int] | None, images: Sequence[str]
    ) -> None:
        """Refuse a stream whose frames (``size``: (height, width), known at its first frame),
        style and region files would not fit the memory limit, as ``live`` refuses its
        source: batches of ``max_batch`` frames of this size."""
        settings = memory_settings(spec, size, self.config.max_batch, self.spec.device)
        check_stylizer_memory(**{**settings, "styles": [*settings["styles"], *images]})

    def remove_stream(self, name: str) -> Json:
        """Stop a stream (its threads end, its source closes, its recording is finalized)."""
        runtime = self.stream(name)
        runtime.stop()
        with self._lock:
            self._streams.pop(name, None)
        self.scheduler.forget(name)
        log.info("stream %s removed", name)
        return {
            "removed": name,
            "threads_alive": runtime.alive,
            "record": None if runtime.record_path is None else str(runtime.record_path),
            "frames_out": runtime.stats.frames_out,
            "outputs": runtime.standard_outputs.status_dicts(),  # closed by now
        }

    def observe(self) -> None:
        """Sample every stream's numbers (the run loop calls this often): ``get-status``
        rates are over the last few seconds, whatever the status-line interval is."""
        for stream in self.streams():
            stream.tracker.observe()

    # -- status -----------------------------------------------------------------------------
    def status(self) -> dict[str, Any]:
        streams = self.streams()
        per_stream = [stream.status() for stream in streams]
        since = time.monotonic() - RATE_WINDOW_S
        recent = [ms for stream in streams for ms in stream.latencies.since(since)]
        p50, p95 = latency_percentiles(recent)
        s = self.scheduler.stats
        return {
            "elapsed_s": round(time.monotonic() - self.started, 1),
            "streams": per_stream,
            "total": {
                "streams": len(per_stream),
                "fps_in": round(sum(x["fps_in"] for x in per_stream), 2),
                "fps_out": round(sum(x["fps_out"] for x in per_stream), 2),
                "frames_out": sum(x["frames_out"] for x in per_stream),
                "dropped": sum(x["dropped"] for x in per_stream),
                "reconnects": sum(x["reconnects"] for x in per_stream),
                "latency_p50_ms": p50,
                "latency_p95_ms": p95,
                "batches": s.batches,
                "mean_batch": round(s.frames / s.batches, 2) if s.batches else 0.0,
                "failed_batches": s.failed_batches,
            },
        }

    def status_line(self) -> str:
        status = self.status()
        total = status["total"]
        parts = [
            f"serve {status['elapsed_s']:.0f} s: {total['streams']} stream(s), in "
            f"{total['fps_in']:.1f} fps, out {total['fps_out']:.1f} fps, "
            f"mean batch {total['mean_batch']:.1f}, dropped {total['dropped']}"
        ]
        for item in status["streams"]:
            latency = (
                f"p50 {item['latency_p50_ms']:.0f} p95 {item['latency_p95_ms']:.0f} ms"
                if item["latency_p50_ms"] is not None
                else "latency -"
            )
            text = (
                f"{item['name']}: in {item['fps_in']:.1f} out {item['fps_out']:.1f} fps, "
                f"{latency}, dropped {item['dropped']}, reconnects {item['reconnects']}"
            )
            if item["in_outage"]:
                text += ", SOURCE DOWN (reconnecting)"
            if item["state"] not in ("running",):
                text += f", {item['state'].upper()}"
                if item["error"]:
                    text += f" ({item['error']})"
            parts.append(text)
        return " | ".join(parts)

    # -- control ----------------------------------------------------------------------------
    def handle(self, request: Mapping[str, Any]) -> Json:
        """Carry out one decoded control request (ControlRequestError/ValueError: refused)."""
        return self.handlers.handle(request)

    def start_control(self) -> None:
        if self.config.control is not None:
            self.control = ControlServer(
                self.handlers,
                self.config.control,
                allow_remote_bind=self.config.allow_remote_bind,
                curve_keys_dir=self.config.curve_keys_dir,
            ).start()

    def close(self) -> None:
        if self.control is not None:
            self.control.close()
        self.scheduler.stop()
        for stream in self.streams():
            stream.stop()
        if self.publisher is not None:
            self.publisher.close()

    def __enter__(self) -> StreamServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# -- running -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class ServeResult:
    elapsed_s: float
    status: dict[str, Any]
    interrupted_by: int | None = None

    def summary(self) -> str:
        total = self.status["total"]
        lines = [
            f"{'interrupted: ' if self.interrupted_by else ''}serve ended after "
            f"{self.elapsed_s:.1f} s: {total['frames_out']} frames published from "
            f"{total['streams']} stream(s), {total['batches']} model calls (mean batch "
            f"{total['mean_batch']:.1f}), {total['dropped']} dropped"
        ]
        for item in self.status["streams"]:
            lines.append(
                f"  {item['name']}: {item['frames_out']} frames out, {item['dropped']} dropped, "
                f"{item['reconnects']} reconnect(s), {item['state']}"
                + (f" ({item['error']})" if item["error"] else "")
            )
        return "\n".join(lines)


def run_serve(
    config: ServeConfig,
    *,
    model: StyleTransferModel | None = None,
    on_ready: Callable[[dict[str, Any]], None] | None = None,
    print_status: Callable[[str], None] | None = None,
    stop_event: threading.Event | None = None,
    handle_signals: bool = False,
) -> ServeResult:
    """Serve until ``config.seconds`` pass, ``stop_event`` is set, or SIGINT/SIGTERM (with
    ``handle_signals``, main thread only). A stream that cannot start is reported and skipped.

    ``on_ready({"zmq", "control", "streams"})`` once the sockets are bound and the streams
    started (``streams``: name -> None or the reason it could not start).
    """
    stop = stop_event or threading.Event()
    interrupted: list[int] = []

    def on_signal(signum: int, _count: int) -> None:
        interrupted.append(signum)
        stop.set()

    emit = print_status or (lambda line: log.info("%s", line))
    started = time.monotonic()
    interrupts.check()  # a Ctrl-C that some C code swallowed during start-up
    with interrupts.deferred(), StreamServer(config, model=model) as server:
        # from the first recording on, a signal only stops the run (which finalizes them)
        problems: dict[str, str | None] = {}
        for spec in config.streams:
            try:
                server.add_stream(spec)
                problems[spec.name] = None
            except (StylestreamError, ValueError, OSError) as err:
                problems[spec.name] = str(err)
                emit(f"stream {spec.name} not started: {err}")
        server.scheduler.start()
        server.start_control()
        if on_ready is not None:
            on_ready(
                {
                    "zmq": None if server.publisher is None else server.publisher.endpoint,
                    "control": None if server.control is None else server.control.endpoint,
                    "streams": problems,
                }
            )
        with interrupts.handled_by(on_signal, enabled=handle_signals):
            started = time.monotonic()
            next_status = started + config.status_interval_s
            while not stop.is_set():
                now = time.monotonic()
                if config.seconds is not None and now - started >= config.seconds:
                    break
                server.observe()
                if config.status_interval_s and now >= next_status:
                    next_status = now + config.status_interval_s
                    emit(server.status_line())
                stop.wait(0.1)
        status = server.status()
    return ServeResult(
        elapsed_s=time.monotonic() - started,
        status=status,
        interrupted_by=interrupted[0] if interrupted else None,
    )
