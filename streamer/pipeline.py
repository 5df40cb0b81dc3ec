"""Decode -> stylize -> write, overlapped: the one pipeline every front end runs.

Three threads joined by bounded queues (:class:`streamer.queues.FrameQueue`)::

    source --decode--> [decoded] --stylize (batches)--> [stylized] --write--> sink, sink, ...

- Offline sources block on a full queue (every input frame reaches every sink); live sources
  (``source.live``) drop the oldest decoded frame instead and count it, so latency never builds.
- An end-of-stream marker flows through the queues; a stop event ends every wait within
  ``poll_s``. Threads are daemons, so a stuck device call can never keep the process alive.
- Errors: a failing ``stylize`` or ``write`` stage stops everything at once; a failing ``decode``
  stage (a damaged input) first lets the frames decoded before the damage through, so they are
  in the output. Either way :meth:`Pipeline.run` re-raises the error as :class:`PipelineError`
  naming the stage (the original is ``__cause__``), after closing every sink.
- SIGINT/SIGTERM (when run from the main thread, through :mod:`streamer.interrupts`): the first
  signal stops reading and discards decoded frames not yet stylized, lets the batch being
  stylized finish and be written, then closes the sinks; a second signal stops at once (the batch
  in flight is lost). A signal that arrived before :meth:`Pipeline.run` stops it before the first
  frame. Sinks are closed (encoders flushed, files finalized) in every case.
  ``StatsSnapshot.interrupted_by`` tells.

Batches are stylized by :class:`streamer.batch_runner.BatchRunner` (pinned-memory, overlapped
transfers on CUDA); counters live in :class:`streamer.stats.PipelineStats`. The contracts
(:class:`~streamer.frames.FrameSource`, :class:`~streamer.frames.FrameSink`,
:class:`~streamer.frames.Stylizer`) are in :mod:`streamer.frames`.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field

from adaattn_video.errors import StylestreamError
from streamer import interrupts
from streamer.batch_runner import BatchRunner
from streamer.frames import Frame, FrameSink, FrameSource, Stylizer
from streamer.queues import END, FrameQueue
from streamer.stats import PipelineStats, StatsSnapshot

log = logging.getLogger(__name__)


class PipelineError(RuntimeError):
    """A pipeline stage raised. ``stage`` names it; the original exception is ``error`` and
    ``__cause__``."""

    def __init__(self, stage: str, error: BaseException) -> None:
        self.stage = stage
        self.error = error
        super().__init__(self._message())

    def _message(self) -> str:
        return f"pipeline stage {self.stage!r} failed: {type(self.error).__name__}: {self.error}"


class PipelineUserError(PipelineError, StylestreamError):
    """A stage failed with a user-facing error (a damaged input, a full disk...): the command
    line prints its message as one line."""

    def _message(self) -> str:
        return str(self.error)


@dataclass(frozen=True)
class PipelineConfig:
    """How the stages are joined.

    Attributes:
        batch_size: frames stylized per model call (>= 1). Offline, a batch waits until full;
            live, it takes what is queued (never waits for frames that are not there yet).
        max_queue_frames: capacity of each queue between stages (>= 1).
        drop_oldest: True: a full decoded-frames queue drops its oldest frame (live);
            False: it blocks the source (offline); None: ``source.live`` decides.
        poll_s: longest a waiting stage sleeps before checking the stop event.
        stop_timeout_s: how long :meth:`Pipeline.run` waits for a stage to end after a stop.
        monitor_interval_s: seconds between calls of the ``monitor`` callback.
        handle_signals: install SIGINT/SIGTERM handlers while running (main thread only).
    """

    batch_size: int = 1
    max_queue_frames: int = 8
    drop_oldest: bool | None = None
    poll_s: float = 0.05
    stop_timeout_s: float = 30.0
    monitor_interval_s: float = 0.25
    handle_signals: bool = True

    def __post_init__(self) -> None:
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {self.batch_size}")
        if self.max_queue_frames < 1:
            raise ValueError(f"max_queue_frames must be >= 1, got {self.max_queue_frames}")
        for name in ("poll_s", "stop_timeout_s", "monitor_interval_s"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be > 0, got {getattr(self, name)}")


Monitor = Callable[[StatsSnapshot], None]


@dataclass
class _Failure:
    stage: str
    error: BaseException


@dataclass
class _State:
    failure: _Failure | None = None
    source_exhausted: bool = False
    threads: dict[str, threading.Thread] = field(default_factory=dict)


class Pipeline:
    """Runs ``source`` -> ``stylizer`` -> every sink in ``sinks``, overlapped.

    :meth:`run` opens the source if needed and ALWAYS closes the source and every sink.
    :meth:`stop` may be called from any thread (a control endpoint, a signal handler).
    ``monitor(snapshot)`` is called from the calling thread every ``monitor_interval_s`` and
    once at the end (progress bars, status lines).
    """

    def __init__(
        self,
        source: FrameSource,
        stylizer: Stylizer,
        sinks: Sequence[FrameSink],
        config: PipelineConfig | None = None,
        *,
        monitor: Monitor | None = None,
    ) -> None:
        if not sinks:
            raise ValueError("expected at least one sink, got none")
        self.source = source
        self.runner = BatchRunner(stylizer)
        self.sinks = list(sinks)
        self.config = config or PipelineConfig()
        self.monitor = monitor
        drop = self.config.drop_oldest
        if drop is None:
            drop = source.live
        self.drop_oldest = drop
        self.queues = {
            "decoded": FrameQueue(
                self.config.max_queue_frames, drop_oldest=drop, poll_s=self.config.poll_s
            ),
            "stylized": FrameQueue(self.config.max_queue_frames, poll_s=self.config.poll_s),
        }
        self.stats = PipelineStats(
            queue_depths=lambda: {name: len(q) for name, q in self.queues.items()},
            queue_drops=lambda: sum(q.dropped for q in self.queues.values()),
        )
        self._stop_input = threading.Event()  # stop reading; let frames in flight finish
        self._hard_stop = threading.Event()  # stop everything now
        self._state = _State()
        self._carry: Frame | None = None

    # -- control ----------------------------------------------------------------------------
    def stop(self, *, graceful: bool = True) -> None:
        """Stop reading (graceful: the batch being stylized is still written) or stop now."""
        self._stop_input.set()
        # Live sources (webcam, network) may be waiting for a frame that never comes (an
        # outage): let them return now instead of after their timeouts (issue 4).
        self.source.interrupt()
        if not graceful:
            self._hard_stop.set()

    def snapshot(self) -> StatsSnapshot:
        return self.stats.snapshot()

    def _fail(self, stage: str, error: BaseException, *, hard: bool) -> None:
        """Record the first failure; ``hard`` stops every stage now (else the frames already
        decoded still flow to the sinks)."""
        if self._state.failure is None:
            self._state.failure = _Failure(stage, error)
            log.debug("stage %s failed: %r", stage, error)
        if hard:
            self.stop(graceful=False)

    # -- stages -----------------------------------------------------------------------------
    def _decode_stage(self) -> None:
        decoded = self.queues["decoded"]
        try:
            frames: Iterator[Frame] = iter(self.source)
            while not self._stop_input.is_set():
                started = time.perf_counter()
                frame = next(frames, None)
                self.stats.add_busy("decode", time.perf_counter() - started)
                if frame is None:
                    self._state.source_exhausted = True
                    break
                self.stats.count_in()
                if not decoded.put(frame, self._hard_stop):
                    return
        except BaseException as err:
            self._fail("decode", err, hard=False)  # frames decoded so far still get written
        finally:
            decoded.put(END, self._hard_stop)

    def _next_batch(self) -> tuple[list[Frame], bool]:
        """Up to ``batch_size`` frames of one size; (frames, end_of_stream_seen)."""
        decoded = self.queues["decoded"]
        first = self._carry if self._carry is not None else decoded.get(self._hard_stop)
        self._carry = None
        if first is None or first is END:
            return [], True
        batch = [first]
        while len(batch) < self.config.batch_size and not self._stop_input.is_set():
            item = decoded.get_nowait() if self.drop_oldest else decoded.get(self._hard_stop)
            if item is None:
                break
            if item is END:
                return batch, True
            if item.image.shape != first.image.shape:
                self._carry = item  # a new size starts the next batch
                break
            batch.append(item)
        return batch, False

    def _stylize_stage(self) -> None:
        stylized = self.queues["stylized"]
        try:
            ended = False
            while not ended and not self._hard_stop.is_set():
                batch, ended = self._next_batch()
                if not batch:
                    continue
                started = time.perf_counter()
                # Defer a batch (CUDA overlap) only while frames are queued behind it: a live
                # frame must not wait for the next one to be published.
                waiting = self._carry is not None or len(self.queues["decoded"]) > 0
                finished = self.runner.submit(batch, more_waiting=waiting)
                self.stats.add_busy("stylize", time.perf_counter() - started)
                self._emit(finished)
                if self._stop_input.is_set() and not ended and self._state.failure is None:
                    # interrupted: frames not yet stylized are discarded, not waited for
                    self._discard_decoded()
                    ended = True
            if not self._hard_stop.is_set():
                started = time.perf_counter()
                finished = self.runner.flush()
                self.stats.add_busy("stylize", time.perf_counter() - started)
                self._emit(finished)
        except BaseException as err:
            self._fail("stylize", err, hard=True)
        finally:
            stylized.put(END, self._hard_stop)

    def _discard_decoded(self) -> None:
        if self._carry is not None:
            self._carry = None
            self.stats.count_discarded(1)
        self.stats.count_discarded(self.queues["decoded"].discard_until_end(self._hard_stop))

    def _emit(self, frames: Sequence[Frame]) -> None:
        for frame in frames:
            if not self.queues["stylized"].put(frame, self._hard_stop):
                return

    def _write_stage(self) -> None:
        stylized = self.queues["stylized"]
        try:
            while True:
                item = stylized.get(self._hard_stop)
                if item is None:
                    return
                if item is END:
                    break
                started = time.perf_counter()
                for sink in self.sinks:
                    sink.write(item)
                self.stats.add_busy("write", time.perf_counter() - started)
                self.stats.count_out(item)
            if self._state.source_exhausted and self._state.failure is None:
                self.stats.completed = True
                for sink in self.sinks:
                    sink.end_of_stream()
        except BaseException as err:
            self._fail("write", err, hard=True)

    # -- running ----------------------------------------------------------------------------
    def run(self) -> StatsSnapshot:
        """Run to the end of the source (or a stop); returns the final statistics.

        Raises:
            PipelineError / PipelineUserError: a stage failed (after every sink was closed).
        """
        state = self._state
        # From here on a signal stops the run (one that came before: at once), also while the
        # sinks are being finalized: it can never interrupt a half-written close.
        with interrupts.handled_by(self._on_signal, enabled=self.config.handle_signals):
            try:
                self.source.open()
                self.stats.start()
                for name, target in (
                    ("decode", self._decode_stage),
                    ("stylize", self._stylize_stage),
                    ("write", self._write_stage),
                ):
                    thread = threading.Thread(
                        target=target, name=f"stylestream-{name}", daemon=True
                    )
                    state.threads[name] = thread
                    thread.start()
                self._wait()
            finally:
                writer = state.threads.get("write")
                if writer is not None and writer.is_alive():  # _wait raised (monitor error...)
                    self.stop(graceful=False)
                    writer.join(timeout=self.config.stop_timeout_s)
                self.stats.finish()
                close_error = self._close_sinks(state.failure)
                self._close_source()
        snapshot = self.snapshot()
        if self.monitor is not None:
            self.monitor(snapshot)
        if state.failure is not None:
            failure = state.failure
            cls = (
                PipelineUserError if isinstance(failure.error, StylestreamError) else PipelineError
            )
            raise cls(failure.stage, failure.error) from failure.error
        if close_error is not None:
            raise close_error
        return snapshot

    def _wait(self) -> None:
        """Wait for the writer (then the others), calling the monitor meanwhile."""
        threads = self._state.threads
        interval = self.config.monitor_interval_s
        next_tick = time.monotonic() + interval
        while threads["write"].is_alive():
            threads["write"].join(timeout=min(self.config.poll_s * 2, interval))
            if self.monitor is not None and time.monotonic() >= next_tick:
                next_tick = time.monotonic() + interval
                self.monitor(self.snapshot())
        # the writer is done: everything else ends promptly (or is stuck in a device call)
        self.stop(graceful=False)
        deadline = time.monotonic() + self.config.stop_timeout_s
        for name in ("stylize", "decode"):
            threads[name].join(timeout=max(0.0, deadline - time.monotonic()))
            if threads[name].is_alive():
                log.warning(
                    "pipeline stage %s did not stop within %.0f s", name, self.config.stop_timeout_s
                )

    def _close_sinks(self, failure: _Failure | None) -> BaseException | None:
        """Close every sink; returns the first close error (logged when a stage failed too)."""
        first: BaseException | None = None
        writer = self._state.threads.get("write")
        if writer is not None and writer.is_alive():
            log.error("the write stage is still running: sinks are left open")
            return None
        for sink in self.sinks:
            try:
                sink.close()
            except BaseException as err:
                if failure is not None or first is not None:
                    log.error("closing %s failed too: %s", type(sink).__name__, err)
                else:
                    first = err
        return first

    def _close_source(self) -> None:
        decoder = self._state.threads.get("decode")
        if decoder is not None and decoder.is_alive():
            log.warning("the decode stage is still running: the source is left open")
            return
        try:
            self.source.close()
        except Exception as err:
            log.warning("closing the source failed: %s", err)

    # -- signals ----------------------------------------------------------------------------
    def _on_signal(self, signum: int, _count: int) -> None:
        name = signal.Signals(signum).name
        if self.stats.interrupted_by is None:
            self.stats.interrupted_by = signum
            log.warning(
                "%s: stopping; finishing the frames in flight and closing the output "
                "(send it again to stop at once)",
                name,
            )
            self.stop(graceful=True)
        else:
            log.warning("%s again: stopping now", name)
            self.stop(graceful=False)
