"""What a live run reports: its route at the start, a status line while it runs (the pipeline's
monitor, which also stops the run after ``seconds`` or on a stop event), and
:class:`LiveResult` with the one-paragraph summary at the end (each output's final numbers)."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from streamer.frames import FrameSource
from streamer.outputs import parse_outputs
from streamer.pipeline import Pipeline
from streamer.stats import LiveStatus, LiveStatusTracker, StatsSnapshot, latency_percentiles
from streamer.zeromq.publisher import ZmqSink

if TYPE_CHECKING:
    from streamer.live import LiveConfig
    from streamer.zeromq.control import ControlServer

log = logging.getLogger("streamer.live")


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
    outputs: tuple[dict[str, Any], ...] = ()  # every output's final status (redacted)
    temporal: dict[str, Any] | None = None  # mode, settings and counters (get-status's)

    def summary(self) -> str:
        s = self.stats
        parts = [
            f"{'interrupted: ' if s.interrupted_by else ''}live run ended after "
            f"{s.elapsed_s:.1f} s: {self.status.frames_in} frames in, {s.frames_out} out "
            f"({s.fps_out:.2f} fps), {self.status.dropped} dropped, "
            f"{self.status.reconnects} reconnect(s)"
        ]
        p50, p95 = latency_percentiles(self.latencies_ms)
        if p50 is not None:
            parts.append(f"latency capture->publish p50 {p50:.0f} ms, p95 {p95:.0f} ms")
        if self.temporal is not None and self.temporal["mode"] != "off":
            t = self.temporal
            parts.append(
                f"temporal {t['mode']}: {t['stylized']} stylized, {t['warped']} warped, "
                f"{t['resets']} resets"
            )
        if self.record is not None:
            parts.append(f"recorded to {self.record}")
        parts += [
            f"output {o['output']}: {o['state']}, {o['frames']} frames, {o['drops']} dropped, "
            f"{o['reconnects']} reconnect(s)" + (f" ({o['error']})" if o["error"] else "")
            for o in self.outputs
            if o["kind"] not in ("zmq", "record")
        ]
        return "\n".join(parts)


def log_route(
    config: LiveConfig,
    source: FrameSource,
    publisher: ZmqSink | None,
    record_path: Path | None,
    control: ControlServer | None,
) -> None:
    """Log where the frames come from and go to (one INFO line)."""
    log.info(
        "%s source %s -> %s",
        "live" if source.live else "file (every frame, as fast as the model goes)",
        config.source,
        ", ".join(
            part
            for part in (
                f"ZeroMQ {publisher.endpoint}" if publisher else "",
                f"recording {record_path}" if record_path else "",
                *(f"output {spec}" for spec in parse_outputs(config.outputs)),
                f"control {control.endpoint}" if control else "",
            )
            if part
        ),
    )


def status_monitor(
    config: LiveConfig,
    pipeline: Pipeline,
    tracker: LiveStatusTracker,
    emit: Callable[[str], None],
    stop_event: threading.Event | None,
) -> Callable[[StatsSnapshot], None]:
    """The pipeline's monitor: stops the run after ``seconds`` or on ``stop_event``, feeds the
    status tracker and prints a status line every ``status_interval_s``."""
    started = time.monotonic()
    next_status = started + config.status_interval_s

    def monitor(snapshot: StatsSnapshot) -> None:
        nonlocal next_status
        now = time.monotonic()
        if config.seconds is not None and now - started >= config.seconds:
            pipeline.stop()
        if stop_event is not None and stop_event.is_set():
            pipeline.stop()
        tracker.observe(snapshot)
        if config.status_interval_s and now >= next_status:
            next_status = now + config.status_interval_s
            emit(tracker.interval_status(snapshot).line())

    return monitor


__all__ = ["LiveResult", "log_route", "status_monitor"]
