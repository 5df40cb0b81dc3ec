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
- SIGINT/SIGTERM (when run from the main thread): the first signal stops reading and discards
  decoded frames not yet stylized, lets the batch being stylized finish and be written, then
  closes the sinks; a second signal stops at once (the batch in flight is lost). Sinks are closed
  (encoders flushed, files finalized) in every case. ``StatsSnapshot.interrupted_by`` tells.
- On CUDA, batches go through pinned host buffers, uploads run on a side stream and results come
  back with asynchronous copies collected one batch later, so transfers overlap compute.

The stylizer is a :class:`adaattn_video.stylizer.FrameStylizer` or anything with the same
``stylize_uint8((B, H, W, 3) uint8 tensor) -> (B, H', W', 3) uint8 tensor`` method, or a plain
callable ``(B, H, W, 3) uint8 numpy -> same``.
"""

from __future__ import annotations

import dataclasses
import logging
import signal
import statistics
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from adaattn_video.errors import StylestreamError
from streamer.frames import Frame, FrameSink, FrameSource
from streamer.queues import END, FrameQueue

log = logging.getLogger(__name__)

STAGES = ("decode", "stylize", "write")


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


@dataclass(frozen=True)
class StatsSnapshot:
    """The pipeline's state at one moment (what status lines and progress bars show).

    ``stage_busy_s``: seconds each stage spent working (not waiting on queues): the decode
    stage in the source, stylize in the model (incl. host<->device copies), write in the sinks.
    ``latency_*_ms``: capture -> written, over the last written frames (live sources set
    ``capture_time_s`` when the frame arrived).
    """

    elapsed_s: float
    frames_in: int
    frames_out: int
    dropped: int
    discarded: int
    fps_in: float
    fps_out: float
    recent_fps_out: float
    stage_busy_s: Mapping[str, float]
    queue_depths: Mapping[str, int]
    latency_p50_ms: float | None = None
    latency_p95_ms: float | None = None
    completed: bool = False
    interrupted_by: int | None = None

    def status_line(self) -> str:
        """One line for logs: ``fps in/out, latency, queues, drops``."""
        parts = [
            f"{self.frames_out} frames out",
            f"fps in {self.fps_in:.1f} / out {self.recent_fps_out:.1f}",
        ]
        if self.latency_p50_ms is not None:
            parts.append(
                f"latency p50 {self.latency_p50_ms:.0f} ms p95 {self.latency_p95_ms:.0f} ms"
            )
        parts.append("queues " + " ".join(f"{k}={v}" for k, v in self.queue_depths.items()))
        parts.append(f"dropped {self.dropped}")
        return ", ".join(parts)

    def stage_summary(self) -> str:
        """``decode 0.4 s, stylize 12.1 s, write 0.9 s``."""
        return ", ".join(f"{k} {v:.1f} s" for k, v in self.stage_busy_s.items())


class PipelineStats:
    """Counters the stage threads update and the caller reads (thread-safe)."""

    def __init__(self, latency_window: int = 300, rate_window_s: float = 3.0) -> None:
        self._lock = threading.Lock()
        self._start = time.monotonic()
        self._end: float | None = None
        self.frames_in = 0
        self.frames_out = 0
        self.discarded = 0
        self.busy_s = dict.fromkeys(STAGES, 0.0)
        self._latencies_ms: deque[float] = deque(maxlen=latency_window)
        self._out_times: deque[float] = deque()
        self._rate_window_s = rate_window_s
        self.completed = False
        self.interrupted_by: int | None = None

    def start(self) -> None:
        self._start = time.monotonic()

    def finish(self) -> None:
        self._end = time.monotonic()

    def add_busy(self, stage: str, seconds: float) -> None:
        with self._lock:
            self.busy_s[stage] += seconds

    def count_in(self) -> None:
        with self._lock:
            self.frames_in += 1

    def count_out(self, frame: Frame) -> None:
        now = time.monotonic()
        with self._lock:
            self.frames_out += 1
            if frame.capture_time_s:
                self._latencies_ms.append((time.time() - frame.capture_time_s) * 1000.0)
            self._out_times.append(now)
            while self._out_times and now - self._out_times[0] > self._rate_window_s:
                self._out_times.popleft()

    def snapshot(self, queues: Mapping[str, FrameQueue] | None = None) -> StatsSnapshot:
        queues = queues or {}
        now = time.monotonic() if self._end is None else self._end
        with self._lock:
            elapsed = max(now - self._start, 1e-9)
            recent = len(self._out_times)
            span = now - self._out_times[0] if recent > 1 else 0.0
            latencies = sorted(self._latencies_ms)
            return StatsSnapshot(
                elapsed_s=elapsed,
                frames_in=self.frames_in,
                frames_out=self.frames_out,
                dropped=sum(q.dropped for q in queues.values()),
                discarded=self.discarded,
                fps_in=self.frames_in / elapsed,
                fps_out=self.frames_out / elapsed,
                recent_fps_out=(recent - 1) / span if span > 0 else self.frames_out / elapsed,
                stage_busy_s=dict(self.busy_s),
                queue_depths={name: len(q) for name, q in queues.items()},
                latency_p50_ms=statistics.median(latencies) if latencies else None,
                latency_p95_ms=latencies[min(len(latencies) - 1, int(0.95 * len(latencies)))]
                if latencies
                else None,
                completed=self.completed,
                interrupted_by=self.interrupted_by,
            )


Stylizer = Any  # FrameStylizer, an object with stylize_uint8, or a numpy callable


# A CUDA batch in flight: frames, pinned output buffer, done event, style id.
_Pending = tuple[list[Frame], torch.Tensor, torch.cuda.Event, str | None]


class BatchRunner:
    """Runs a stylizer on batches of frames and hands back finished frames.

    CPU (or a numpy callable): :meth:`submit` returns the batch's frames, stylized.
    CUDA: the batch is copied into a pinned host buffer, uploaded on a side stream, stylized,
    and copied back into a pinned buffer asynchronously; :meth:`submit` returns the PREVIOUS
    batch (waiting for its copy), so the next batch's upload and compute overlap this one's
    download. :meth:`flush` returns what is still in flight.
    """

    def __init__(self, stylizer: Stylizer) -> None:
        self.stylizer = stylizer
        self.device = torch.device(getattr(stylizer, "device", "cpu"))
        self.uses_tensors = hasattr(stylizer, "stylize_uint8")
        self.cuda = self.uses_tensors and self.device.type == "cuda" and torch.cuda.is_available()
        if self.cuda:
            self._copy_stream = torch.cuda.Stream(self.device)
            self._slots: list[dict[str, Any]] = [{}, {}]
            self._slot = 0
            self._pending: _Pending | None = None

    def submit(self, frames: Sequence[Frame]) -> list[Frame]:
        images = np.stack([f.image for f in frames])
        if self.cuda:
            return self._submit_cuda(list(frames), images)
        if self.uses_tensors:
            out = self.stylizer.stylize_uint8(torch.from_numpy(images)).cpu().numpy()
        else:
            out = np.asarray(self.stylizer(images))
        _check_output(out, len(frames))
        style_id = _style_id(self.stylizer)
        return [
            dataclasses.replace(f, image=out[i], style_id=style_id) for i, f in enumerate(frames)
        ]

    def flush(self) -> list[Frame]:
        if not self.cuda or self._pending is None:
            return []
        return self._collect()

    # -- CUDA -------------------------------------------------------------------------------
    def _pinned(self, slot: dict[str, Any], key: str, shape: tuple[int, ...]) -> torch.Tensor:
        """A pinned uint8 buffer of at least ``shape`` (reallocated when frames change size)."""
        buf = slot.get(key)
        if buf is None or buf.shape[1:] != shape[1:] or buf.shape[0] < shape[0]:
            buf = torch.empty(shape, dtype=torch.uint8, pin_memory=True)
            slot[key] = buf
        return buf[: shape[0]]

    def _submit_cuda(self, frames: list[Frame], images: np.ndarray) -> list[Frame]:
        slot = self._slots[self._slot]
        self._slot ^= 1
        if slot.get("uploaded") is not None:
            slot["uploaded"].synchronize()  # this slot's input buffer is free again
        host_in = self._pinned(slot, "in", images.shape)
        host_in.copy_(torch.from_numpy(images))
        with torch.cuda.stream(self._copy_stream):
            device_in = host_in.to(self.device, non_blocking=True)
            uploaded = torch.cuda.Event()
            uploaded.record(self._copy_stream)
        slot["uploaded"] = uploaded
        compute = torch.cuda.current_stream(self.device)
        compute.wait_event(uploaded)
        device_in.record_stream(compute)
        device_out = self.stylizer.stylize_uint8(device_in)
        style_id = _style_id(self.stylizer)
        host_out = self._pinned(slot, "out", tuple(device_out.shape))
        host_out.copy_(device_out, non_blocking=True)
        done = torch.cuda.Event()
        done.record(compute)
        finished = self._collect() if self._pending is not None else []
        self._pending = (frames, host_out, done, style_id)
        return finished

    def _collect(self) -> list[Frame]:
        frames, host_out, done, style_id = self._pending
        self._pending = None
        done.synchronize()
        out = host_out.numpy()
        _check_output(out, len(frames))
        # copy out of the pinned buffer: it is reused two batches later
        return [
            dataclasses.replace(f, image=out[i].copy(), style_id=style_id)
            for i, f in enumerate(frames)
        ]


def _style_id(stylizer: Stylizer) -> str | None:
    """The style the batch just stylized got (frames carry it: live switches, issue 4). Exact
    when the stylizer says so (``streamer.live.SwitchSafeStylizer``); a plain FrameStylizer is
    read right after the call, which is exact unless the style changed during it."""
    try:
        return getattr(stylizer, "style_id", None)
    except RuntimeError:  # FrameStylizer without a style (cannot happen after a call)
        return None


def _check_output(out: np.ndarray, count: int) -> None:
    if out.dtype != np.uint8 or out.ndim != 4 or out.shape[0] != count or out.shape[-1] != 3:
        raise ValueError(
            f"stylizer must return ({count}, H, W, 3) uint8 frames, got {out.shape} {out.dtype}"
        )


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
            drop = bool(getattr(source, "live", False))
        self.drop_oldest = drop
        self.queues = {
            "decoded": FrameQueue(
                self.config.max_queue_frames, drop_oldest=drop, poll_s=self.config.poll_s
            ),
            "stylized": FrameQueue(self.config.max_queue_frames, poll_s=self.config.poll_s),
        }
        self.stats = PipelineStats()
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
        interrupt = getattr(self.source, "interrupt", None)
        if interrupt is not None:
            interrupt()
        if not graceful:
            self._hard_stop.set()

    def snapshot(self) -> StatsSnapshot:
        return self.stats.snapshot(self.queues)

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
                finished = self.runner.submit(batch)
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
            self.stats.discarded += 1
        self.stats.discarded += self.queues["decoded"].discard_until_end(self._hard_stop)

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
                    end_of_stream = getattr(sink, "end_of_stream", None)
                    if end_of_stream is not None:
                        end_of_stream()
        except BaseException as err:
            self._fail("write", err, hard=True)

    # -- running ----------------------------------------------------------------------------
    def run(self) -> StatsSnapshot:
        """Run to the end of the source (or a stop); returns the final statistics.

        Raises:
            PipelineError / PipelineUserError: a stage failed (after every sink was closed).
        """
        enter = getattr(self.source, "__enter__", None)
        try:
            if enter is not None:
                enter()
        except BaseException:
            self._close_sinks(None)
            raise
        previous_handlers = self._install_signal_handlers()
        state = self._state
        try:
            self.stats.start()
            for name, target in (
                ("decode", self._decode_stage),
                ("stylize", self._stylize_stage),
                ("write", self._write_stage),
            ):
                thread = threading.Thread(target=target, name=f"stylestream-{name}", daemon=True)
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
            self._restore_signal_handlers(previous_handlers)
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
    def _install_signal_handlers(self) -> dict[int, Any]:
        if (
            not self.config.handle_signals
            or threading.current_thread() is not threading.main_thread()
        ):
            return {}
        previous = {}
        for signum in (signal.SIGINT, signal.SIGTERM):
            previous[signum] = signal.signal(signum, self._on_signal)
        return previous

    def _restore_signal_handlers(self, previous: dict[int, Any]) -> None:
        for signum, handler in previous.items():
            signal.signal(signum, handler)

    def _on_signal(self, signum: int, _frame: object) -> None:
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


def run_pipeline(
    source: FrameSource,
    stylizer: Stylizer,
    sinks: Sequence[FrameSink],
    config: PipelineConfig | None = None,
    *,
    monitor: Monitor | None = None,
) -> StatsSnapshot:
    """``Pipeline(...).run()`` in one call."""
    return Pipeline(source, stylizer, sinks, config, monitor=monitor).run()
