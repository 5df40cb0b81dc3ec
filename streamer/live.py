"""Live stylization as a function: :class:`LiveConfig` in, frames published (and recorded) out.

``stylestream live`` is a thin wrapper around :func:`run_live`; tests and ``bench live`` call it
directly. It assembles the shared pipeline (:mod:`streamer.pipeline`) for low latency::

    webcam / RTSP / file --[newest frame only]--> stylize (batch 1) --> ZeroMQ PUB (+ MP4)
                                                       ^
                                   control endpoint: set-style / set-alpha / get-status

- Live sources (cameras, network streams, files with ``realtime``) drop the oldest frame when
  the model is slower than the source: one decoded frame waits at most, so latency stays about
  one model call. Files without ``realtime`` are processed as fast as the model goes, losing
  nothing.
- Every published frame carries the id of the style it was really stylized with
  (:class:`SwitchSafeStylizer`), so a subscriber sees exactly when a switch took effect.
- A status line every ``status_interval_s``: fps in/out, latency capture -> publish, drops,
  reconnects.
"""

from __future__ import annotations

import logging
import statistics
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from torch import Tensor

from adaattn_video.errors import StylestreamError
from adaattn_video.stylizer import (
    PRECISIONS,
    FrameStylizer,
    open_stylizer,
)
from streamer.endpoints import check_bind_endpoint
from streamer.frames import Frame, FrameSink, FrameSource
from streamer.pipeline import Pipeline, PipelineConfig, StatsSnapshot
from streamer.regions import RegionPlan
from streamer.sinks.zmq import DEFAULT_ENDPOINT, ZmqSink, ZmqSinkConfig
from streamer.wire import check_encoding

log = logging.getLogger(__name__)


class LiveConfigError(StylestreamError, ValueError):
    """A live setting is invalid (from a flag or a config file)."""


@dataclass(frozen=True)
class LiveConfig:
    """Everything one live run needs; every field has a ``stylestream live`` flag / YAML key.

    Attributes:
        source: ``0`` / ``/dev/video0`` (webcam), ``rtsp://...`` (or rtmp/http/hls/srt), a
            video file, or ``lavfi:GRAPH``.
        styles / style_weights: style image(s) and their mix (None: equal).
        zmq: PUB endpoint, or None to publish nothing (then ``record`` is required).
        encoding / jpeg_quality: payload of published frames (``jpeg`` or ``rgb24``).
        send_hwm: frames queued per subscriber before that subscriber loses frames.
        send_buffer_bytes: kernel send buffer per subscriber connection (None: the OS's); with
            ``send_hwm`` it bounds how stale a slow subscriber's frames can get.
        record: also write the stylized stream to this MP4 file.
        overwrite: replace an existing ``record`` file.
        size: (height, width) of stylized frames, or None for the source's.
        control: REP control endpoint, or None for no control.
        realtime: a FILE source plays at its own frame rate (and then drops frames like a
            camera); without it a file goes as fast as the model and loses nothing.
        allow_remote_bind: let ``zmq``/``control`` bind non-loopback addresses.
        curve_keys_dir: encrypt and authenticate subscribers and control clients (CURVE).
        weights / untrained / device / precision / alpha / style_size: the model.
        status_interval_s: seconds between status lines (0: none).
        seconds: stop after this long (None: until the source ends or Ctrl-C).
        capture_size / capture_fps / fourcc: what to request from a webcam.
        transport / open_timeout_s / read_timeout_s / give_up_after_s / during_outage /
            end_of_stream: network source behaviour (see :mod:`streamer.sources.network`).
    """

    source: str
    styles: tuple[str, ...] = ()
    style_weights: tuple[float, ...] | None = None
    zmq: str | None = DEFAULT_ENDPOINT
    encoding: str = "jpeg"
    jpeg_quality: int = 90
    send_hwm: int = 8
    send_buffer_bytes: int | None = None
    record: str | None = None
    overwrite: bool = False
    size: tuple[int, int] | None = None
    control: str | None = None
    realtime: bool = False
    allow_remote_bind: bool = False
    curve_keys_dir: str | None = None
    weights: str | None = None
    untrained: bool = False
    device: str = "auto"
    precision: str = "auto"
    alpha: float = 1.0
    style_size: int | None = 512
    status_interval_s: float = 5.0
    seconds: float | None = None
    capture_size: tuple[int, int] | None = None
    capture_fps: float | None = None
    fourcc: str | None = None
    transport: str = "tcp"
    open_timeout_s: float = 10.0
    read_timeout_s: float = 5.0
    give_up_after_s: float = 60.0
    during_outage: str = "pause"
    end_of_stream: str = "reconnect"
    ffmpeg_options: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.source:
            raise LiveConfigError("expected a --source (0, /dev/video0, rtsp://..., or a file)")
        if not self.styles:
            raise LiveConfigError("expected at least one --style image")
        if self.style_weights is not None and len(self.style_weights) != len(self.styles):
            raise LiveConfigError(
                f"expected {len(self.styles)} style weights (one per --style), "
                f"got {len(self.style_weights)}"
            )
        if self.zmq is None and self.record is None:
            raise LiveConfigError("nothing to do: give a --zmq endpoint and/or --record OUT.mp4")
        if self.untrained and self.weights is not None:
            raise LiveConfigError("give either --weights or --untrained, not both")
        if self.precision != "auto" and self.precision not in PRECISIONS:
            raise LiveConfigError(
                f"precision must be auto or one of {sorted(PRECISIONS)}, got {self.precision!r}"
            )
        if self.status_interval_s < 0:
            raise LiveConfigError(f"status_interval_s must be >= 0, got {self.status_interval_s}")
        if self.seconds is not None and self.seconds <= 0:
            raise LiveConfigError(f"seconds must be > 0, got {self.seconds}")
        try:
            check_encoding(self.encoding, self.jpeg_quality)
        except ValueError as err:
            raise LiveConfigError(str(err)) from err
        for endpoint in (self.zmq, self.control):
            if endpoint is not None:  # EndpointError is already a one-line user error
                check_bind_endpoint(endpoint, allow_remote=self.allow_remote_bind)


# -- the stylizer ----------------------------------------------------------------------------
class SwitchSafeStylizer:
    """Wraps a :class:`FrameStylizer` so that ``style_id`` names EXACTLY the style the last
    ``stylize_uint8`` call used (the pipeline labels each frame with it).

    A switch (``set_style`` from the control thread) may land while a batch is being stylized;
    then it is not known which style that batch got, so the batch is stylized once more with
    the new one. That costs one extra model call per switch and makes every label true.
    """

    def __init__(self, stylizer: FrameStylizer) -> None:
        self.inner = stylizer
        self.device = stylizer.device
        self.style_id: str | None = None
        self.restylized_batches = 0

    def stylize_uint8(self, frames: Tensor) -> Tensor:
        while True:
            before = self.inner.style
            out = self.inner.stylize_uint8(frames)
            if self.inner.style is before:  # styles are replaced as a whole, never mutated
                self.style_id = before.style_id
                return out
            self.restylized_batches += 1


def build_stylizer(config: LiveConfig) -> FrameStylizer:
    """Load the model (``--weights``, the cache, or ``--untrained``) and encode the style(s)."""
    return open_stylizer(
        list(config.styles),
        weights=config.weights,
        untrained=config.untrained,
        device=config.device,
        precision=config.precision,
        alpha=config.alpha,
        style_size=config.style_size,
        size=config.size,
        style_weights=config.style_weights,
    )


# -- the source ------------------------------------------------------------------------------
def open_live_source(config: LiveConfig) -> FrameSource:
    """The source for ``config.source`` (not yet entered)."""
    from streamer.sources.camera import CameraConfig, CameraSource, is_camera
    from streamer.sources.network import NetworkSource, NetworkSourceConfig, is_network_url

    uri = config.source
    try:
        if is_network_url(uri):
            return NetworkSource(
                NetworkSourceConfig(
                    uri,
                    transport=config.transport,
                    open_timeout_s=config.open_timeout_s,
                    read_timeout_s=config.read_timeout_s,
                    give_up_after_s=config.give_up_after_s,
                    during_outage=config.during_outage,
                    end_of_stream=config.end_of_stream,
                    ffmpeg_options=dict(config.ffmpeg_options),
                )
            )
        if is_camera(uri):
            width, height = (None, None)
            if config.capture_size is not None:
                height, width = config.capture_size
            return CameraSource(
                CameraConfig(
                    uri,
                    width=width,
                    height=height,
                    fps=config.capture_fps,
                    fourcc=config.fourcc,
                    open_timeout_s=config.open_timeout_s,
                    read_timeout_s=config.read_timeout_s,
                )
            )
    except ValueError as err:
        if isinstance(err, StylestreamError):
            raise
        raise LiveConfigError(str(err)) from err
    from streamer.sources import open_source

    return open_source(uri, realtime=config.realtime)


# -- status ----------------------------------------------------------------------------------
class LatencyProbe:
    """A sink that only measures: capture -> now for each frame written (put it right after
    the publisher, so it measures capture -> publish), over a sliding window."""

    def __init__(self, window: int = 1000) -> None:
        self._lock = threading.Lock()
        self._latencies_ms: deque[float] = deque(maxlen=window)
        self.frames = 0

    def write(self, frame: Frame) -> None:
        latency_ms = (time.time() - frame.capture_time_s) * 1000.0
        with self._lock:
            self._latencies_ms.append(latency_ms)
            self.frames += 1

    def take(self) -> list[float]:
        """The latencies since the last call (and forget them)."""
        with self._lock:
            values = list(self._latencies_ms)
            self._latencies_ms.clear()
        return values

    def close(self) -> None:
        pass


def percentile(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


@dataclass
class LiveStatus:
    """What the status line shows (also the ``get-status`` control reply)."""

    elapsed_s: float = 0.0
    fps_in: float = 0.0
    fps_out: float = 0.0
    latency_p50_ms: float | None = None
    latency_p95_ms: float | None = None
    frames_in: int = 0
    frames_out: int = 0
    dropped: int = 0
    drops_per_s: float = 0.0
    reconnects: int = 0
    outages: int = 0
    in_outage: bool = False
    style_id: str | None = None

    def line(self) -> str:
        latency = (
            f"latency p50 {self.latency_p50_ms:.0f} ms p95 {self.latency_p95_ms:.0f} ms"
            if self.latency_p50_ms is not None
            else "latency -"
        )
        text = (
            f"live {self.elapsed_s:.0f} s: in {self.fps_in:.1f} fps, out {self.fps_out:.1f} fps, "
            f"{latency}, dropped {self.dropped} ({self.drops_per_s:.1f}/s), "
            f"reconnects {self.reconnects}"
        )
        if self.in_outage:
            text += ", SOURCE DOWN (reconnecting)"
        return text + f", style {self.style_id}"

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def source_frames_read(source: FrameSource, fallback: int) -> int:
    stats = getattr(source, "stats", None)
    if stats is not None and hasattr(stats, "frames_read"):
        return int(stats.frames_read)
    read = getattr(source, "frames_read", None)
    return int(read) if isinstance(read, int) else fallback


class StatusTracker:
    """Turns pipeline snapshots and source counters into :class:`LiveStatus` over intervals."""

    def __init__(self, source: FrameSource, probe: LatencyProbe, stylizer: SwitchSafeStylizer):
        self.source = source
        self.probe = probe
        self.stylizer = stylizer
        self.current = LiveStatus()
        self._lock = threading.Lock()
        self._last: tuple[float, int, int, int] | None = None  # time, in, out, dropped
        self.latencies_ms: list[float] = []  # every latency of the run (bench and summary)

    def update(self, snapshot: StatsSnapshot) -> LiveStatus:
        now = time.monotonic()
        frames_in = source_frames_read(self.source, snapshot.frames_in)
        dropped = (
            snapshot.dropped
            + snapshot.discarded
            + int(getattr(self.source, "dropped_frames", 0) or 0)
        )
        frames_out = snapshot.frames_out
        recent = self.probe.take()
        self.latencies_ms.extend(recent)
        if self._last is None:
            span = snapshot.elapsed_s
            d_in, d_out, d_drop = frames_in, frames_out, dropped
        else:
            t0, in0, out0, drop0 = self._last
            span = now - t0
            d_in, d_out, d_drop = frames_in - in0, frames_out - out0, dropped - drop0
        self._last = (now, frames_in, frames_out, dropped)
        span = max(span, 1e-6)
        stats = getattr(self.source, "stats", None)
        status = LiveStatus(
            elapsed_s=snapshot.elapsed_s,
            fps_in=d_in / span,
            fps_out=d_out / span,
            latency_p50_ms=statistics.median(recent) if recent else None,
            latency_p95_ms=percentile(recent, 0.95) if recent else None,
            frames_in=frames_in,
            frames_out=frames_out,
            dropped=dropped,
            drops_per_s=d_drop / span,
            reconnects=int(getattr(stats, "reconnects", 0)),
            outages=int(getattr(stats, "outages", 0)),
            in_outage=bool(getattr(self.source, "in_outage", False)),
            style_id=self.stylizer.inner.style_id,
        )
        with self._lock:
            self.current = status
        return status

    def snapshot_dict(self) -> dict[str, Any]:
        with self._lock:
            return self.current.as_dict()


def _frame_rate_hint(source: FrameSource) -> float | None:
    rate = getattr(source, "frame_rate", None) or getattr(source, "fps", None)
    if rate:
        return float(rate)
    interval = getattr(source, "frame_interval_s", None)
    return 1.0 / interval if interval else None


# -- running ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class LiveResult:
    """What a live run did."""

    stats: StatsSnapshot
    status: LiveStatus
    latencies_ms: tuple[float, ...]
    endpoint: str | None
    control_endpoint: str | None
    record: Path | None
    restylized_batches: int = 0

    def summary(self) -> str:
        s = self.stats
        parts = [
            f"{'interrupted: ' if s.interrupted_by else ''}live run ended after "
            f"{s.elapsed_s:.1f} s: {self.status.frames_in} frames in, {s.frames_out} out "
            f"({s.fps_out:.2f} fps), {self.status.dropped} dropped, "
            f"{self.status.reconnects} reconnect(s)"
        ]
        if self.latencies_ms:
            parts.append(
                f"latency capture->publish p50 {statistics.median(self.latencies_ms):.0f} ms, "
                f"p95 {percentile(self.latencies_ms, 0.95):.0f} ms"
            )
        if self.record is not None:
            parts.append(f"recorded to {self.record}")
        return "\n".join(parts)


Hook = Callable[[dict[str, Any]], None]


def run_live(
    config: LiveConfig,
    *,
    stylizer: FrameStylizer | None = None,
    source: FrameSource | None = None,
    on_ready: Hook | None = None,
    print_status: Callable[[str], None] | None = None,
    stop_event: threading.Event | None = None,
    regions: RegionPlan | None = None,
) -> LiveResult:
    """Run a live stream until the source ends, ``config.seconds`` pass, ``stop_event`` is
    set, or Ctrl-C; returns what happened.

    ``stylizer`` / ``source``: use these instead of building them from ``config`` (tests,
    benchmarks). ``on_ready(info)`` is called once the publisher and control endpoints are bound
    (``info["zmq"]``, ``info["control"]``: the real endpoints, e.g. for ``:*`` ports).
    ``print_status``: where status lines go (default: the log at INFO). ``regions``: a style
    per region (still masks or chroma keys; the stylizer's style is the default style).
    """
    source = source if source is not None else open_live_source(config)
    with source:  # open (and fail) before the model loads: mistakes should cost nothing
        if regions is not None:
            stylizer = regions.attach(stylizer or build_stylizer(config))
        return _run_opened(config, source, stylizer, on_ready, print_status, stop_event)


def _run_opened(
    config: LiveConfig,
    source: FrameSource,
    stylizer: FrameStylizer | None,
    on_ready: Hook | None,
    print_status: Callable[[str], None] | None,
    stop_event: threading.Event | None,
) -> LiveResult:
    from streamer.control import ControlServer

    record_path = None
    if config.record is not None:
        from streamer.sinks import check_output_file

        record_path = check_output_file(config.record, overwrite=config.overwrite)
    if config.curve_keys_dir is not None:
        from streamer.keys import load_server_keys

        load_server_keys(config.curve_keys_dir)  # missing keys: fail before the model loads
    if stylizer is None:
        stylizer = build_stylizer(config)
    labeled = SwitchSafeStylizer(stylizer)

    sinks: list[FrameSink] = []
    publisher: ZmqSink | None = None
    control: ControlServer | None = None
    probe = LatencyProbe()
    tracker = StatusTracker(source, probe, labeled)
    try:
        if config.zmq is not None:
            publisher = ZmqSink(
                ZmqSinkConfig(
                    config.zmq,
                    encoding=config.encoding,
                    jpeg_quality=config.jpeg_quality,
                    send_hwm=config.send_hwm,
                    send_buffer_bytes=config.send_buffer_bytes,
                    allow_remote_bind=config.allow_remote_bind,
                    curve_keys_dir=None
                    if config.curve_keys_dir is None
                    else Path(config.curve_keys_dir),
                )
            )
            sinks += [publisher, probe]
        if record_path is not None:
            from streamer.sinks.mp4 import Mp4Sink, Mp4SinkConfig

            sinks.append(
                Mp4Sink(
                    Mp4SinkConfig(
                        record_path,
                        overwrite=config.overwrite,
                        frame_rate=_frame_rate_hint(source),
                    )
                )
            )
        if publisher is None:
            sinks.append(probe)  # recording only: latency is capture -> written
        if config.control is not None:
            control = ControlServer(
                stylizer,
                config.control,
                status=tracker.snapshot_dict,
                allow_remote_bind=config.allow_remote_bind,
                curve_keys_dir=config.curve_keys_dir,
            ).start()
    except BaseException:
        for sink in sinks:
            sink.close()
        raise

    is_live = bool(getattr(source, "live", False))
    log.info(
        "%s source %s -> %s",
        "live" if is_live else "file (every frame, as fast as the model goes)",
        config.source,
        ", ".join(
            part
            for part in (
                f"ZeroMQ {publisher.endpoint}" if publisher else "",
                f"recording {record_path}" if record_path else "",
                f"control {control.endpoint}" if control else "",
            )
            if part
        ),
    )
    pipeline = Pipeline(
        source,
        labeled,
        sinks,
        PipelineConfig(
            batch_size=1,  # batching adds a frame time of latency per extra frame
            max_queue_frames=1 if is_live else 4,
            monitor_interval_s=0.1,
        ),
    )
    started = time.monotonic()
    next_status = started + config.status_interval_s
    emit = print_status or (lambda line: log.info("%s", line))

    def monitor(snapshot: StatsSnapshot) -> None:
        nonlocal next_status
        now = time.monotonic()
        if config.seconds is not None and now - started >= config.seconds:
            pipeline.stop()
        if stop_event is not None and stop_event.is_set():
            pipeline.stop()
        if config.status_interval_s and now >= next_status:
            next_status = now + config.status_interval_s
            emit(tracker.update(snapshot).line())

    pipeline.monitor = monitor
    if on_ready is not None:
        on_ready(
            {
                "zmq": publisher.endpoint if publisher is not None else None,
                "control": control.endpoint if control is not None else None,
            }
        )
    try:
        stats = pipeline.run()
    finally:
        if control is not None:
            control.close()
    final = tracker.update(stats)
    return LiveResult(
        stats=stats,
        status=final,
        latencies_ms=tuple(tracker.latencies_ms),
        endpoint=publisher.endpoint if publisher is not None else None,
        control_endpoint=control.endpoint if control is not None else None,
        record=record_path,
        restylized_batches=labeled.restylized_batches,
    )
