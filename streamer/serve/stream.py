"""One stream of ``stylestream serve``: its source, two threads, its style and its numbers.

- The READER thread opens the source (so a slow or bad URL never blocks the server or other
  streams) and puts every frame into ``inbox``, a :class:`~streamer.sources.live.NewestFrames`
  that keeps the newest ``queue_frames`` and drops (counts) older ones.
- The scheduler (:mod:`streamer.serve.scheduler`) takes the newest frame from ``inbox``,
  stylizes it with the stream's current style and puts the result into ``outbox``.
- The WRITER thread publishes each stylized frame on the shared PUB socket under the stream's
  topic and appends it to the stream's recording.

So a stream that stalls, reconnects, sends garbage or ends only affects its own threads; memory
is bounded by (inbox + outbox) frames per stream. The source keeps its own reconnect/outage
policy (:class:`~streamer.sources.network.NetworkSource`).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from adaattn_video.model import StyleTransferModel
from adaattn_video.stylizer import FrameStylizer, StylizerConfig
from streamer.frames import Frame, FrameSink, FrameSource
from streamer.live import percentile
from streamer.serve.config import StreamSpec
from streamer.sinks.zmq import DEFAULT_ENDPOINT, ZmqSink
from streamer.sources.live import EndOfStream, NewestFrames

log = logging.getLogger(__name__)

RATE_WINDOW_S = 5.0


def open_stream_source(spec: StreamSpec) -> FrameSource:
    """The source for ``spec`` (not yet entered), opened exactly as ``live`` opens its
    ``--source`` (webcam, network with its reconnect policy, file/lavfi paced in real time)."""
    from streamer.live import LiveConfig, open_live_source

    # LiveConfig carries the source options; its publisher settings are unused here.
    config = LiveConfig(
        source=spec.source,
        styles=spec.styles,
        zmq=DEFAULT_ENDPOINT,
        realtime=True,
        capture_size=spec.capture_size,
        capture_fps=spec.capture_fps,
        fourcc=spec.fourcc,
        transport=spec.transport,
        open_timeout_s=spec.open_timeout_s,
        read_timeout_s=spec.read_timeout_s,
        give_up_after_s=spec.give_up_after_s,
        during_outage=spec.during_outage,
        end_of_stream=spec.end_of_stream,
    )
    return open_live_source(config)


class StreamStats:
    """Counters and a sliding window of events for rates and latency percentiles.

    Thread-safe: the reader, the scheduler and the writer all report here.
    """

    def __init__(self, window: int = 4096) -> None:
        self._lock = threading.Lock()
        self.started = time.monotonic()
        self.frames_in = 0
        self.frames_out = 0
        self.dropped = 0  # replaced before stylizing or before publishing
        self._in_times: deque[float] = deque(maxlen=window)
        self._out: deque[tuple[float, float]] = deque(maxlen=window)  # (time, latency ms)
        self.latencies_ms: deque[float] = deque(maxlen=100_000)  # the run's, for summaries

    def frame_in(self) -> None:
        with self._lock:
            self.frames_in += 1
            self._in_times.append(time.monotonic())

    def frame_out(self, latency_ms: float) -> None:
        with self._lock:
            self.frames_out += 1
            self._out.append((time.monotonic(), latency_ms))
            self.latencies_ms.append(latency_ms)

    def add_dropped(self, count: int) -> None:
        if count:
            with self._lock:
                self.dropped += count

    def snapshot(self, window_s: float = RATE_WINDOW_S) -> dict[str, Any]:
        """fps in/out and latency p50/p95 over the last ``window_s`` seconds, and totals."""
        now = time.monotonic()
        span = max(1e-3, min(window_s, now - self.started))
        with self._lock:
            ins = sum(1 for t in self._in_times if now - t <= span)
            recent = [latency for t, latency in self._out if now - t <= span]
            totals = (self.frames_in, self.frames_out, self.dropped)
        return {
            "fps_in": round(ins / span, 2),
            "fps_out": round(len(recent) / span, 2),
            "latency_p50_ms": round(percentile(recent, 0.5), 1) if recent else None,
            "latency_p95_ms": round(percentile(recent, 0.95), 1) if recent else None,
            "frames_in": totals[0],
            "frames_out": totals[1],
            "dropped": totals[2],
        }


class StreamRuntime:
    """A running stream: ``start()`` its threads, ``take_newest()`` (scheduler),
    ``deliver()`` stylized frames, ``stop()`` (joins its threads, finalizes its recording).

    States: ``starting`` (opening the source), ``running``, ``ended`` (the source finished),
    ``failed`` (could not start, or the source gave up: ``error`` says why), ``stopped``.
    """

    def __init__(
        self,
        spec: StreamSpec,
        model: StyleTransferModel,
        stylizer_config: StylizerConfig,
        publisher: ZmqSink | None,
        *,
        queue_frames: int = 1,
        overwrite: bool = False,
        on_frame: threading.Event | None = None,
        source: FrameSource | None = None,
        outputs: Sequence[FrameSink] = (),
    ) -> None:
        """Encodes the style(s) and creates the recording now (errors raise, nothing starts).

        ``source``: frames from this source instead of opening ``spec.source`` (a push-fed
        stream, e.g. :class:`~streamer.serve.push.PushSource`); ``outputs``: sinks that also
        get every stylized frame (written by the writer thread; the caller closes them).
        """
        self.spec = spec
        self.name = spec.name
        self.stylizer = FrameStylizer(model, stylizer_config)  # the model is shared
        self.stylizer.set_style(list(spec.styles), spec.style_weights)
        self.publisher = publisher
        self.stats = StreamStats()
        self.inbox: NewestFrames[Frame] = NewestFrames(queue_frames)
        self.outbox: NewestFrames[Frame] = NewestFrames(queue_frames)
        self.state = "starting"
        self.error: str | None = None
        self.source: FrameSource | None = None
        self._given_source = source
        self._outputs = tuple(outputs)
        self._on_frame = on_frame
        self._stop = threading.Event()
        self._recorder = None
        self.record_path: Path | None = None
        if spec.record is not None:
            from streamer.sinks.mp4 import Mp4Sink, Mp4SinkConfig

            self._recorder = Mp4Sink(Mp4SinkConfig(spec.record, overwrite=overwrite))
            self.record_path = Path(self._recorder.path)
        self._reader = threading.Thread(target=self._read, name=f"serve-{self.name}-reader")
        self._writer = threading.Thread(target=self._write, name=f"serve-{self.name}-writer")
        self._reader.daemon = self._writer.daemon = True

    # -- lifecycle --------------------------------------------------------------------------
    def start(self) -> StreamRuntime:
        self._reader.start()
        self._writer.start()
        return self

    def stop(self, timeout_s: float = 15.0) -> None:
        """End the stream: its source closes, queued frames are dropped, the recording is
        finalized; returns when both threads have ended (or ``timeout_s`` passed)."""
        self._stop.set()
        interrupt = getattr(self.source, "interrupt", None)
        if interrupt is not None:
            interrupt()
        self._reader.join(timeout_s)
        self.outbox.finish()
        self._writer.join(timeout_s)
        if self.state in ("starting", "running"):
            self.state = "stopped"

    @property
    def alive(self) -> bool:
        return self._reader.is_alive() or self._writer.is_alive()

    @property
    def threads(self) -> tuple[threading.Thread, ...]:
        return (self._reader, self._writer)

    # -- reader -----------------------------------------------------------------------------
    def _read(self) -> None:
        try:
            self.source = (
                self._given_source
                if self._given_source is not None
                else open_stream_source(self.spec)
            )
            with self.source as source:
                if self._stop.is_set():
                    return
                self.state = "running"
                log.info("stream %s: %s open", self.name, self.spec.source)
                for frame in source:
                    self.inbox.put(frame)
                    self.stats.frame_in()
                    if self._on_frame is not None:
                        self._on_frame.set()
                    if self._stop.is_set():
                        break
            if not self._stop.is_set():
                self.state = "ended"
                log.warning("stream %s: the source ended", self.name)
        except Exception as err:  # one stream's failure never reaches the others
            self.state = "failed"
            self.error = str(err) or type(err).__name__
            log.error("stream %s stopped: %s", self.name, self.error)
        finally:
            self.inbox.finish()
            if self._on_frame is not None:
                self._on_frame.set()

    def take_newest(self) -> Frame | None:
        """The newest waiting frame (older waiting ones are dropped and counted), or None."""
        newest = None
        while True:
            try:
                frame = self.inbox.get(0)
            except EndOfStream:
                break
            except Exception:  # the reader's error: it is in self.error already
                break
            if frame is None:
                break
            if newest is not None:
                self.stats.add_dropped(1)
            newest = frame
        return newest

    # -- writer -----------------------------------------------------------------------------
    def deliver(self, frame: Frame) -> None:
        """Hand a stylized frame to the writer thread (the oldest waiting one is dropped)."""
        before = self.outbox.dropped
        self.outbox.put(frame)
        self.stats.add_dropped(self.outbox.dropped - before)

    def _write(self) -> None:
        try:
            while True:
                try:
                    frame = self.outbox.get(0.5)
                except EndOfStream:
                    return
                if frame is None or self._stop.is_set():
                    continue
                if self.publisher is not None:
                    self.publisher.publish(frame, style_id=frame.style_id, stream=self.name)
                # capture -> publish (-> written, when recording only)
                latency_ms = 1000.0 * (time.time() - frame.capture_time_s)
                if self._recorder is not None:
                    self._recorder.write(frame)
                    if self.publisher is None:
                        latency_ms = 1000.0 * (time.time() - frame.capture_time_s)
                for output in self._outputs:
                    output.write(frame)
                self.stats.frame_out(latency_ms)
        except Exception as err:
            self.state = "failed"
            self.error = f"output: {err}"
            log.error("stream %s: output failed: %s", self.name, err)
            self._stop.set()
        finally:
            if self._recorder is not None:
                try:
                    self._recorder.close()
                except Exception as err:
                    log.error("stream %s: recording not finalized: %s", self.name, err)

    # -- reporting --------------------------------------------------------------------------
    def status(self) -> dict[str, Any]:
        source_stats = getattr(self.source, "stats", None)
        source_drops = int(getattr(self.source, "dropped_frames", 0) or 0)
        snapshot = self.stats.snapshot()
        snapshot["dropped"] += self.inbox.dropped + source_drops
        try:
            style_id = self.stylizer.style_id
        except RuntimeError:
            style_id = None
        return {
            "name": self.name,
            "state": self.state,
            "error": self.error,
            "source": self.spec.source,
            "style_id": style_id,
            "alpha": self.stylizer.alpha,
            **snapshot,
            "reconnects": int(getattr(source_stats, "reconnects", 0)),
            "outages": int(getattr(source_stats, "outages", 0)),
            "in_outage": bool(getattr(self.source, "in_outage", False)),
            "record": None if self.record_path is None else str(self.record_path),
        }
