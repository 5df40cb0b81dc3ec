"""Live stylization as a function: :class:`LiveConfig` in, frames published (and recorded) out.

``stylestream live`` is a thin wrapper around :func:`run_live`; tests and ``bench live`` call it
directly. It assembles the shared pipeline (:mod:`streamer.pipeline`) for low latency::

    webcam / RTSP / file --[newest frame only]--> stylize (batch 1) --> ZeroMQ PUB (+ MP4)
                                                       ^
          control endpoint: set-style / set-alpha / set-regions / clear-regions / get-status

- Live sources (cameras, network streams, files with ``realtime``) drop the oldest frame when
  the model is slower than the source: one decoded frame waits at most, so latency stays about
  one model call. Files without ``realtime`` are processed as fast as the model goes, losing
  nothing.
- Every published frame carries the id of the style it was really stylized with
  (:class:`SwitchSafeStylizer`; with regions ``STYLE|regions:A,B``), so a subscriber sees
  exactly when a switch took effect.
- The stylizer is a :class:`~streamer.regions.switch.RegionSwitch`: a run started with or without
  ``--region`` takes ``set-regions`` / ``clear-regions`` while it runs.
- A status line every ``status_interval_s``: fps in/out, latency capture -> publish, drops,
  reconnects.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from torch import Tensor

from adaattn_video.errors import StylestreamError
from adaattn_video.resources import check_stylizer_memory
from adaattn_video.settings import StylizerSpec
from adaattn_video.stylizer import FrameStylizer, open_stylizer
from configkit.checks import non_negative, positive
from configkit.convert import check_fields, option
from streamer import interrupts
from streamer.frames import FrameSink, FrameSource
from streamer.guard import frame_size, guard_declared, memory_settings
from streamer.live_report import LiveResult, log_route, status_monitor
from streamer.outputs import OutputSet, parse_outputs
from streamer.outputs.encoder_options import encoder_settings, parse_output_options
from streamer.pipeline import Pipeline, PipelineConfig
from streamer.regions.specs import RegionPlan
from streamer.regions.switch import RegionSwitch
from streamer.sources import LiveOptions, open_source
from streamer.stats import (
    LatencyProbe,
    LiveStatusTracker,
)
from streamer.temporal.options import TemporalOptions
from streamer.zeromq.endpoints import check_bind_endpoint
from streamer.zeromq.publisher import DEFAULT_ENDPOINT, PublishOptions, ZmqSink, ZmqSinkConfig

if TYPE_CHECKING:
    from streamer.zeromq.control import ControlServer

log = logging.getLogger(__name__)


class LiveConfigError(StylestreamError, ValueError):
    """A live setting is invalid (from a flag or a config file)."""


NONE_WORDS = ("none", "off", "")


def endpoint_or_none(value: Any) -> str | None:
    """An endpoint value; ``none``/``off``/empty (or null) turn the endpoint off."""
    if value is None or str(value).strip().lower() in NONE_WORDS:
        return None
    if not isinstance(value, str):
        return str(value)
    return value


@dataclass(frozen=True)
class LiveConfig:
    """Everything one live run needs; every field has a ``stylestream live`` flag / YAML key
    (its metadata ``flag`` name; the stylizer's keys are
    :class:`~adaattn_video.settings.StylizerSpec`'s: ``style``, ``device``, ``size``, ...).

    Outputs: ``zmq`` (None: publish nothing), ``record`` (also an MP4), ``outputs``
    (standard outputs, :mod:`streamer.outputs`: RTMP, RTSP, SRT, HLS, NDI, a virtual webcam;
    parsed here, so a bad URL fails before anything starts); at least one of them. ``send_buffer_bytes``: kernel send buffer per subscriber (None: the OS's); with
    ``send_hwm`` it bounds how stale a slow subscriber's frames can get. Network sources: see
    :mod:`streamer.sources.network`.
    """

    source: str = option(
        "", "0 or /dev/video0 (webcam), rtsp://... (or rtmp/http/hls/srt), a video file, or "
        "lavfi:GRAPH", metavar="SRC", role="input",
    )  # fmt: skip
    stylizer: StylizerSpec = option(StylizerSpec(), "the model and style", flatten=True)
    zmq: str | None = option(
        DEFAULT_ENDPOINT, "ZeroMQ PUB endpoint ('none' to publish nothing)", metavar="ENDPOINT",
        parse=endpoint_or_none,
    )  # fmt: skip
    publish: PublishOptions = option(PublishOptions(), flatten=True)
    record: str | None = option(
        None, "also record the stylized stream", metavar="OUT.mp4", role="output"
    )
    overwrite: bool = option(False, "replace an existing --record file")
    outputs: tuple[str, ...] = option(
        (), "also send the stylized stream to URL (repeat): rtmp://HOST/APP/KEY, "
        "rtsp://HOST/PATH, srt://HOST:PORT, hls:DIR, ndi:NAME, virtualcam[:/dev/videoN] "
        "(docs/outputs.md)", flag="output", metavar="URL", repeat=True, role="none",
    )  # fmt: skip
    output_options: tuple[str, ...] = option(
        (), "H.264 setting of every --output (repeat): codec, preset, tune, bitrate, crf, gop "
        "(docs/outputs.md)", flag="output_option", metavar="KEY=VALUE", repeat=True,
        parse=parse_output_options, role="none",
    )  # fmt: skip
    control: str | None = option(
        None, "control endpoint for `stylestream control` ('none' to disable)",
        metavar="ENDPOINT", parse=endpoint_or_none,
    )  # fmt: skip
    allow_remote_bind: bool = option(
        False, "let --zmq/--control bind beyond loopback (use --curve-keys on a network)"
    )
    curve_keys_dir: str | None = option(
        None, "encrypt and accept only authorized subscribers (`stylestream keys generate DIR`)",
        flag="curve_keys", metavar="DIR", role="input",
    )  # fmt: skip
    status_interval_s: float = option(
        5.0, "seconds between status lines (0: none)", metavar="S", check=non_negative
    )
    seconds: float | None = option(None, "stop after S seconds", metavar="S", check=positive)
    source_options: LiveOptions = option(LiveOptions(), flatten=True)
    motion: TemporalOptions = option(
        TemporalOptions(temporal="flow"), "temporal stability (docs/temporal.md)", flatten=True
    )

    def __post_init__(self) -> None:
        if not self.source:
            raise LiveConfigError("expected a --source (0, /dev/video0, rtsp://..., or a file)")
        if not isinstance(self.stylizer, StylizerSpec):
            raise LiveConfigError(f"stylizer must be a StylizerSpec, got {self.stylizer!r}")
        self.stylizer.require_styles()
        object.__setattr__(self, "outputs", tuple(s.url for s in parse_outputs(self.outputs)))
        if self.zmq is None and self.record is None and not self.outputs:
            raise LiveConfigError(
                "nothing to do: give a --zmq endpoint, --record OUT.mp4 and/or --output URL"
            )
        check_fields(self, LiveConfigError)  # the fields' own checks (> 0, >= 0)
        for endpoint in (self.zmq, self.control):
            if endpoint is not None:  # EndpointError is already a one-line user error
                check_bind_endpoint(endpoint, allow_remote=self.allow_remote_bind)


# -- the stylizer ----------------------------------------------------------------------------
class SwitchSafeStylizer:
    """Wraps a :class:`~streamer.regions.switch.RegionSwitch` so that ``style_id`` names EXACTLY the
    style (and regions) the last ``stylize_uint8`` call used (the pipeline labels each frame
    with it).

    A switch (``set_style`` / ``set-regions`` from the control thread) may land while a batch
    is being stylized; then it is not known which style that batch got, so the batch is
    stylized once more with the new one (:meth:`RegionSwitch.stylize_labelled`). That costs one
    extra model call per switch and makes every label true.
    """

    def __init__(self, stylizer: RegionSwitch) -> None:
        self.inner = stylizer
        self.device = stylizer.device
        self.style_id: str | None = None
        self.restylized_batches = 0

    def stylize_uint8(self, frames: Tensor) -> Tensor:
        out, self.style_id, retries = self.inner.stylize_labelled(frames)
        self.restylized_batches += retries
        return out


def build_stylizer(config: LiveConfig) -> FrameStylizer:
    """Load the model (``--weights``, the cache, or ``--untrained``) and encode the style(s)."""
    return open_stylizer(config.stylizer)


# -- the source ------------------------------------------------------------------------------
def live_options(config: LiveConfig) -> LiveOptions:
    """The webcam / network / pacing settings of ``config`` for :func:`open_source`."""
    return config.source_options


# -- running ---------------------------------------------------------------------------------
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
    per region (still masks or chroma keys; the stylizer's style is the default style); the
    control endpoint's ``set-regions`` / ``clear-regions`` replace them while it runs.
    """
    interrupts.check()  # a Ctrl-C that some C code swallowed during start-up
    source = source if source is not None else open_source(config.source, live=live_options(config))
    with source:  # open (and fail) before the model loads: mistakes should cost nothing
        if regions is not None:
            stylizer = RegionSwitch(stylizer or build_stylizer(config), regions)
        return _run_opened(config, source, stylizer, on_ready, print_status, stop_event)


def _run_opened(
    config: LiveConfig,
    source: FrameSource,
    stylizer: FrameStylizer | RegionSwitch | None,
    on_ready: Hook | None,
    print_status: Callable[[str], None] | None,
    stop_event: threading.Event | None,
) -> LiveResult:
    record_path = _check_before_model(config)
    # every output URL parsed, its programs/devices checked: before the model loads
    outputs = OutputSet.from_urls(
        config.outputs,
        info=source.info(),
        audio=getattr(source, "audio", None),
        encoder=encoder_settings(config.output_options) if config.output_options else None,
    )
    try:
        switch = _region_switch(config, source, stylizer)
    except BaseException:
        outputs.close()
        raise
    if switch.temporal is None:  # a source outage or reconnect starts a fresh temporal state
        switch.use_temporal(config.motion, watch=lambda: _outages(source))
    labeled = SwitchSafeStylizer(switch)

    # From the outputs' creation on, a signal only stops the run (which closes them): never a
    # half-made recording.
    with interrupts.deferred():
        probe = LatencyProbe()
        pipeline: Pipeline | None = None
        tracker = LiveStatusTracker(
            snapshot=lambda: None if pipeline is None else pipeline.snapshot(),
            counters=source.counters,
            latencies=probe.latencies,
            style_id=lambda: switch.style_id,
        )
        sinks, publisher, control = _open_outputs(
            config, source, record_path, switch, tracker, probe, outputs
        )
        log_route(config, source, publisher, record_path, control)
        pipeline = Pipeline(
            source,
            labeled,
            sinks,
            PipelineConfig(
                batch_size=1,  # batching adds a frame time of latency per extra frame
                max_queue_frames=1 if source.live else 4,
                monitor_interval_s=0.1,
            ),
        )
        emit = print_status or (lambda line: log.info("%s", line))
        pipeline.monitor = status_monitor(config, pipeline, tracker, emit, stop_event)
        if on_ready is not None:
            on_ready(
                {
                    "zmq": publisher.endpoint if publisher is not None else None,
                    "control": control.endpoint if control is not None else None,
                    "outputs": [output.spec.redacted() for output in outputs.outputs],
                }
            )
        try:
            stats = pipeline.run()
        finally:
            if control is not None:
                control.close()
            if switch.temporal is not None:
                switch.temporal.close()
    final = tracker.interval_status(stats)
    return LiveResult(
        stats=stats,
        status=final,
        latencies_ms=tuple(probe.latencies.all()),
        endpoint=publisher.endpoint if publisher is not None else None,
        control_endpoint=control.endpoint if control is not None else None,
        record=record_path,
        restylized_batches=labeled.restylized_batches,
        outputs=tuple(outputs.status_dicts()),
        temporal=switch.temporal_status()["temporal"],
    )


def _outages(source: FrameSource) -> tuple[int, int]:
    counters = source.counters()
    return counters.outages, counters.reconnects


def _check_before_model(config: LiveConfig) -> Path | None:
    """What can fail without the model, checked before it loads: the recording's path (returned,
    None without ``record``) and the CURVE keys."""
    record_path = None
    if config.record is not None:
        from streamer.sinks import check_output_file

        guard_declared(config)  # source, styles, weights, keys: never under --record
        record_path = check_output_file(config.record, overwrite=config.overwrite)
    if config.curve_keys_dir is not None:
        from streamer.zeromq.curve import load_server_keys

        load_server_keys(config.curve_keys_dir)  # missing keys: fail before the model loads
    return record_path


def _region_switch(
    config: LiveConfig, source: FrameSource, stylizer: FrameStylizer | RegionSwitch | None
) -> RegionSwitch:
    """The stylizer given (or built after a memory check), as a :class:`RegionSwitch`."""
    if stylizer is None:
        check_stylizer_memory(
            **memory_settings(config.stylizer, frame_size(source), 1, config.stylizer.device)
        )
        stylizer = build_stylizer(config)
    if not isinstance(stylizer, RegionSwitch):  # every live run takes set-regions
        stylizer = RegionSwitch(stylizer)
    return stylizer


def _open_outputs(
    config: LiveConfig,
    source: FrameSource,
    record_path: Path | None,
    stylizer: RegionSwitch,
    tracker: LiveStatusTracker,
    probe: LatencyProbe,
    outputs: OutputSet,
) -> tuple[list[FrameSink], ZmqSink | None, ControlServer | None]:
    """The sinks (publisher + latency probe, recording, the standard ``outputs``: each lists
    in ``outputs``' status), and the control server; what was opened is closed again when a
    later one fails."""
    from streamer.zeromq.control import ControlServer, live_handlers

    sinks: list[FrameSink] = [outputs]
    publisher: ZmqSink | None = None
    control: ControlServer | None = None
    try:
        if config.zmq is not None:
            publisher = ZmqSink(
                ZmqSinkConfig(
                    config.zmq,
                    publish=config.publish,
                    allow_remote_bind=config.allow_remote_bind,
                    curve_keys_dir=config.curve_keys_dir,
                )
            )
            sinks += [publisher, probe]
            outputs.list_also(f"zmq {publisher.endpoint}", "zmq", lambda: publisher.frames_sent)
        if record_path is not None:
            from streamer.sinks.mp4 import Mp4Sink, Mp4SinkConfig

            mp4 = Mp4Sink(
                Mp4SinkConfig(
                    record_path, overwrite=config.overwrite, frame_rate=source.info().frame_rate
                )
            )
            sinks.append(mp4)
            outputs.list_also(str(record_path), "record", lambda: mp4.frames_written)
        if publisher is None:
            sinks.append(probe)  # recording only: latency is capture -> written
        if config.control is not None:
            control = ControlServer(
                live_handlers(
                    stylizer, lambda: {**tracker.current_dict(), "outputs": outputs.status_dicts()}
                ),
                config.control,
                allow_remote_bind=config.allow_remote_bind,
                curve_keys_dir=config.curve_keys_dir,
            ).start()
    except BaseException:
        for sink in sinks:
            sink.close()
        raise
    return sinks, publisher, control
