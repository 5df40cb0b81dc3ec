"""One stream of ``stylestream serve``: its source, two threads, its style and its numbers.

- The READER thread opens the source (so a slow or bad URL never blocks the server or other
  streams) and puts every frame into ``inbox``, a drop-oldest
  :class:`~streamer.queues.FrameQueue` that keeps the newest ``queue_frames`` and drops (counts)
  older ones.
- The scheduler (:mod:`streamer.serve.scheduler`) takes the newest frame from ``inbox``,
  stylizes it with the stream's current style and puts the result into ``outbox``.
- The WRITER thread publishes each stylized frame on the shared PUB socket under the stream's
  topic, appends it to the stream's recording and hands it to the stream's standard outputs
  (:class:`~streamer.outputs.OutputSet`: each output has its own thread and newest-wins queue,
  so a dead RTMP server delays neither this stream nor any other).

So a stream that stalls, reconnects, sends garbage or ends only affects its own threads; memory
is bounded by (inbox + outbox) frames per stream. The source keeps its own reconnect/outage
policy (:class:`~streamer.sources.network.NetworkSource`).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from streamer.frames import Frame, FrameSink, FrameSource, SourceCounters
from streamer.outputs import OutputSet
from streamer.queues import END, FrameQueue
from streamer.regions.switch import RegionSwitch
from streamer.serve.config import StreamSpec
from streamer.sources import open_source
from streamer.sources.reader_thread import newest_frames
from streamer.stats import LatencyWindow, LiveStatusTracker, PipelineStats
from streamer.zeromq.publisher import ZmqSink

log = logging.getLogger(__name__)

RATE_WINDOW_S = 5.0


def open_stream_source(spec: StreamSpec) -> FrameSource:
    """The source for ``spec`` (not yet entered), opened by the one opener exactly as ``live``
    opens its ``--source`` (webcam, network with its reconnect policy, file/lavfi paced in
    real time)."""
    return open_source(spec.source, live=spec.live_options())


class StreamRuntime:
    """A running stream: ``start()`` its threads, ``take_newest()`` (scheduler),
    ``deliver()`` stylized frames, ``stop()`` (joins its threads, finalizes its recording).

    Its numbers are the shared ones (:mod:`streamer.stats`): a :class:`PipelineStats` counts
    frames in/out and queue drops, a :class:`LatencyWindow` holds capture -> publish
    latencies, and a :class:`LiveStatusTracker` turns them and the source's counters into the
    stream's :class:`~streamer.stats.LiveStatus` (``get-status``, the status line).

    States: ``starting`` (opening the source), ``running``, ``ended`` (the source finished),
    ``failed`` (could not start, or the source gave up: ``error`` says why), ``stopped``.
    """

    def __init__(
        self,
        spec: StreamSpec,
        stylizer: RegionSwitch,
        publisher: ZmqSink | None,
        *,
        queue_frames: int = 1,
        overwrite: bool = False,
        on_frame: threading.Event | None = None,
        source: FrameSource | None = None,
        outputs: Sequence[FrameSink] = (),
        check_first: Callable[[Frame], None] | None = None,
    ) -> None:
        """``stylizer``: this stream's (its style and regions encoded, the model shared; the
        control commands change it while the stream runs). The recording is created now (errors raise, nothing starts).

        ``source``: frames from this source instead of opening ``spec.source`` (a push-fed
        stream, e.g. :class:`~streamer.serve.push.PushSource`); ``outputs``: sinks that also
        get every stylized frame (written by the writer thread; the caller closes them).
        ``check_first(frame)``: run on the first frame before it is queued; raising refuses the
        stream (state ``failed`` with the reason; e.g. frames too big for the memory limit).
        ``spec.outputs`` (standard outputs) are checked here and closed when the stream stops.
        """
        self.spec = spec
        self.name = spec.name
        self.stylizer = stylizer
        self.publisher = publisher
        self.inbox: FrameQueue = newest_frames(queue_frames)
        self.outbox: FrameQueue = newest_frames(queue_frames)
        self._replaced = 0  # older waiting frames skipped by take_newest
        self.stats = PipelineStats(
            queue_depths=lambda: {"in": len(self.inbox), "out": len(self.outbox)},
            queue_drops=lambda: self.inbox.dropped + self.outbox.dropped + self._replaced,
            rate_window_s=RATE_WINDOW_S,
        )
        self.latencies = LatencyWindow(1000)
        self.tracker = LiveStatusTracker(
            snapshot=self.stats.snapshot,
            counters=self.counters,
            latencies=self.latencies,
            style_id=self._style_id,
            window_s=RATE_WINDOW_S,
        )
        self.state = "starting"
        self.error: str | None = None
        self.source: FrameSource | None = None
        self._given_source = source
        self._outputs = tuple(outputs)
        self._check_first = check_first
        self._on_frame = on_frame
        self._stop = threading.Event()
        self._recorder = None
        self.record_path: Path | None = None
        # checked: nothing started; the source's audio is set once it is open
        self.standard_outputs = OutputSet.from_urls(spec.outputs, encoder=spec.encoder())
        if publisher is not None:
            self.standard_outputs.list_also(
                f"zmq {publisher.endpoint} {self.name}", "zmq", lambda: self.stats.frames_out
            )
        if spec.record is not None:
            from streamer.sinks.mp4 import Mp4Sink, Mp4SinkConfig

            recorder = Mp4Sink(Mp4SinkConfig(spec.record, overwrite=overwrite))
            self._recorder, self.record_path = recorder, Path(spec.record)
            self.standard_outputs.list_also(spec.record, "record", lambda: recorder.frames_written)
        self._reader = threading.Thread(target=self._read, name=f"serve-{self.name}-reader")
        self._writer = threading.Thread(target=self._write, name=f"serve-{self.name}-writer")
        self._reader.daemon = self._writer.daemon = True
        if stylizer.temporal is None:  # this stream's own state; an outage or reconnect resets it
            stylizer.use_temporal(spec.motion, watch=self._outages)

    # -- lifecycle --------------------------------------------------------------------------
    def start(self) -> StreamRuntime:
        self._reader.start()
        self._writer.start()
        return self

    def stop(self, timeout_s: float = 15.0) -> None:
        """End the stream: its source closes, queued frames are dropped, the recording is
        finalized; returns when both threads have ended (or ``timeout_s`` passed)."""
        self._stop.set()
        if self.source is not None:
            self.source.interrupt()
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
                self.standard_outputs.set_info(source.info())  # frame rate: before any frame
                audio = getattr(source, "audio", None)
                if audio is not None:  # a file's or a network stream's sound (RTMP, SRT)
                    self.standard_outputs.set_audio(audio)
                self.state = "running"
                log.info("stream %s: %s open", self.name, self.spec.source)
                for frame in source:
                    if self._check_first is not None:
                        check, self._check_first = self._check_first, None
                        check(frame)  # raises: this stream fails, the others go on
                    self.inbox.put(frame)
                    self.stats.count_in()
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
        while (frame := self.inbox.get_nowait()) is not None and frame is not END:
            if newest is not None:
                self._replaced += 1
            newest = frame
        return newest

    # -- writer -----------------------------------------------------------------------------
    def deliver(self, frame: Frame) -> None:
        """Hand a stylized frame to the writer thread (the oldest waiting one is dropped)."""
        self.outbox.put(frame)

    def _write(self) -> None:
        try:
            while True:
                frame = self.outbox.get(timeout_s=0.5)
                if frame is END:
                    return
                if frame is None or self._stop.is_set():
                    continue
                assert isinstance(frame, Frame)
                if self.publisher is not None:
                    self.publisher.publish(frame, style_id=frame.style_id, stream=self.name)
                    # capture -> published (without a publisher: -> written to the outputs)
                    self.latencies.add(1000.0 * (time.time() - frame.capture_time_s))
                if self._recorder is not None:
                    self._recorder.write(frame)
                for output in self._outputs:
                    output.write(frame)
                self.standard_outputs.write(frame)  # never blocks
                if self.publisher is None:
                    self.latencies.add(1000.0 * (time.time() - frame.capture_time_s))
                self.stats.count_out(frame)
        except Exception as err:
            self.state = "failed"
            self.error = f"output: {err}"
            log.error("stream %s: output failed: %s", self.name, err)
            self._stop.set()
        finally:
            self.standard_outputs.close()  # each flushes in its own thread, bounded
            if self._recorder is not None:
                try:
                    self._recorder.close()
                except Exception as err:
                    log.error("stream %s: recording not finalized: %s", self.name, err)

    # -- reporting --------------------------------------------------------------------------
    def counters(self) -> SourceCounters:
        source = self.source
        return SourceCounters() if source is None else source.counters()

    def _outages(self) -> tuple[int, int]:
        counters = self.counters()
        return counters.outages, counters.reconnects

    @property
    def stylized_alone(self) -> bool:
        """Stylized in its own model call, not in the shared batch: regions (per-region
        masks and styles) or temporal state (frames tied to this stream's previous ones)."""
        temporal = self.stylizer.temporal
        return self.stylizer.has_regions or (temporal is not None and temporal.options.active)

    def _style_id(self) -> str | None:
        try:
            return self.stylizer.style_id
        except RuntimeError:
            return None

    def status(self) -> dict[str, Any]:
        """This stream's :class:`~streamer.stats.LiveStatus` over the last few seconds, with
        its name, state, settings and recording."""
        return {
            "name": self.name,
            "state": self.state,
            "error": self.error,
            "source": self.spec.source,
            "alpha": self.stylizer.alpha,
            **self.stylizer.regions_status(),
            **self.stylizer.temporal_status(),
            **self.tracker.current_dict(),
            "record": None if self.record_path is None else str(self.record_path),
            "outputs": self.standard_outputs.status_dicts(),
        }
