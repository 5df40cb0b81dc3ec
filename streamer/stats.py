"""Run statistics, one module for every front end: frame rates, latency percentiles, status lines.

- :class:`PipelineStats`: counters the pipeline's stage threads update;
  :meth:`PipelineStats.snapshot` freezes them into a :class:`StatsSnapshot` (render's progress
  and summary, the benchmarks).
- :class:`LatencyWindow`: capture -> written/published latencies with their arrival times, so a
  status line can take "since the last line" and ``get-status`` "the last few seconds".
- :class:`LiveStatusTracker`: pipeline snapshot + source counters -> :class:`LiveStatus`, either
  over the interval since the last status line (:meth:`~LiveStatusTracker.interval_status`) or
  computed on request from the live numbers (:meth:`~LiveStatusTracker.current`, the control
  endpoint's ``get-status``). Thread-safe.
- :func:`percentile` / :func:`latency_percentiles`: the one percentile definition (nearest rank,
  ``sorted[min(n - 1, floor(q * n))]``; the median is the usual mean-of-middle-two).

Every clock here is ``time.monotonic()`` except frame capture times, which are ``time.time()``
(they travel in the wire header to other processes).
"""

from __future__ import annotations

import statistics
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from streamer.frames import Frame, FrameSink, SourceCounters

STAGES = ("decode", "stylize", "write")


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q`` quantile (0 <= q <= 1) by nearest rank: ``sorted(values)[min(n-1, int(q*n))]``.

    Raises:
        ValueError: ``values`` is empty or ``q`` is outside [0, 1].
    """
    if not values:
        raise ValueError("percentile of no values")
    if not 0.0 <= q <= 1.0:
        raise ValueError(f"q must be in [0, 1], got {q}")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def latency_percentiles(values: Sequence[float]) -> tuple[float | None, float | None]:
    """(p50, p95) of ``values`` (milliseconds), or (None, None) when there are none."""
    if not values:
        return None, None
    return statistics.median(values), percentile(values, 0.95)


class LatencyWindow:
    """Latencies (ms) with the monotonic time each was recorded; the newest ``window`` are kept
    for queries, and with ``keep_all`` every one of the run (summaries, benchmarks)."""

    def __init__(self, window: int = 1000, *, keep_all: bool = False) -> None:
        if window < 1:
            raise ValueError(f"window must be >= 1, got {window}")
        self._lock = threading.Lock()
        self._recent: deque[tuple[float, float]] = deque(maxlen=window)
        self._all: list[float] | None = [] if keep_all else None

    def add(self, latency_ms: float) -> None:
        now = time.monotonic()
        with self._lock:
            self._recent.append((now, latency_ms))
            if self._all is not None:
                self._all.append(latency_ms)

    def since(self, t: float | None = None) -> list[float]:
        """The kept latencies recorded after monotonic time ``t`` (None: all kept)."""
        with self._lock:
            return [ms for when, ms in self._recent if t is None or when > t]

    def all(self) -> list[float]:
        """Every latency of the run (``keep_all``), else the kept ones."""
        with self._lock:
            if self._all is not None:
                return list(self._all)
            return [ms for _, ms in self._recent]


class LatencyProbe(FrameSink):
    """A sink that only measures capture -> now for each frame (put it right after the
    publisher, so it measures capture -> publish)."""

    def __init__(self, window: LatencyWindow | None = None) -> None:
        self.latencies = window or LatencyWindow(keep_all=True)

    def write(self, frame: Frame) -> None:
        self.latencies.add((time.time() - frame.capture_time_s) * 1000.0)

    def close(self) -> None:
        pass


@dataclass(frozen=True)
class StatsSnapshot:
    """The pipeline's state at one moment (what status lines and progress bars show).

    ``stage_busy_s``: seconds each stage spent working (not waiting on queues): the decode
    stage in the source, stylize in the model (incl. host<->device copies), write in the sinks.
    ``latency_*_ms``: capture -> written, over the last written frames (live sources set
    ``capture_time_s`` when the frame arrived). ``dropped``: frames the decoded-frames queue
    dropped (live); ``discarded``: decoded frames thrown away at an interrupt.
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
    """Counters the stage threads update and any thread reads (thread-safe).

    ``queue_depths`` / ``queue_drops``: callables giving the queues' current lengths and drop
    counts by name (the pipeline owns the queues).
    """

    def __init__(
        self,
        *,
        queue_depths: Callable[[], Mapping[str, int]] = dict,
        queue_drops: Callable[[], int] = lambda: 0,
        latency_window: int = 300,
        rate_window_s: float = 3.0,
    ) -> None:
        self._lock = threading.Lock()
        self._queue_depths = queue_depths
        self._queue_drops = queue_drops
        self._start = time.monotonic()
        self._end: float | None = None
        self.frames_in = 0
        self.frames_out = 0
        self.discarded = 0
        self.busy_s = dict.fromkeys(STAGES, 0.0)
        self._latencies = LatencyWindow(latency_window)
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

    def count_discarded(self, frames: int) -> None:
        with self._lock:
            self.discarded += frames

    def count_out(self, frame: Frame) -> None:
        now = time.monotonic()
        if frame.capture_time_s:
            self._latencies.add((time.time() - frame.capture_time_s) * 1000.0)
        with self._lock:
            self.frames_out += 1
            self._out_times.append(now)
            while self._out_times and now - self._out_times[0] > self._rate_window_s:
                self._out_times.popleft()

    def snapshot(self) -> StatsSnapshot:
        now = time.monotonic() if self._end is None else self._end
        depths = dict(self._queue_depths())
        dropped = self._queue_drops()
        p50, p95 = latency_percentiles(self._latencies.since())
        with self._lock:
            elapsed = max(now - self._start, 1e-9)
            recent = len(self._out_times)
            span = now - self._out_times[0] if recent > 1 else 0.0
            return StatsSnapshot(
                elapsed_s=elapsed,
                frames_in=self.frames_in,
                frames_out=self.frames_out,
                dropped=dropped,
                discarded=self.discarded,
                fps_in=self.frames_in / elapsed,
                fps_out=self.frames_out / elapsed,
                recent_fps_out=(recent - 1) / span if span > 0 else self.frames_out / elapsed,
                stage_busy_s=dict(self.busy_s),
                queue_depths=depths,
                latency_p50_ms=p50,
                latency_p95_ms=p95,
                completed=self.completed,
                interrupted_by=self.interrupted_by,
            )


@dataclass(frozen=True)
class LiveStatus:
    """What the live status line shows (also the ``get-status`` control reply).

    Rates (``fps_in``, ``fps_out``, ``drops_per_s``) and latencies are over an interval (since
    the last status line, or the last few seconds for ``get-status``); counts are totals.
    ``dropped`` = frames the source replaced + frames the pipeline queue dropped + decoded frames
    discarded at a stop.
    """

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
        return asdict(self)


@dataclass(frozen=True)
class _Sample:
    at: float  # monotonic
    frames_in: int
    frames_out: int
    dropped: int


class LiveStatusTracker:
    """Pipeline snapshot + source counters -> :class:`LiveStatus` (thread-safe).

    Args:
        snapshot: the pipeline's current :class:`StatsSnapshot` (or None before it exists).
        counters: the source's current :class:`SourceCounters`.
        latencies: capture -> publish latencies (a :class:`LatencyProbe`'s window).
        style_id: the style being applied now.
        window_s: how far back :meth:`current` looks for rates and latencies.
    """

    def __init__(
        self,
        snapshot: Callable[[], StatsSnapshot | None],
        counters: Callable[[], SourceCounters],
        latencies: LatencyWindow,
        style_id: Callable[[], str | None],
        *,
        window_s: float = 3.0,
    ) -> None:
        if window_s <= 0:
            raise ValueError(f"window_s must be > 0, got {window_s}")
        self._snapshot = snapshot
        self._counters = counters
        self.latencies = latencies
        self._style_id = style_id
        self._window_s = window_s
        self._lock = threading.Lock()
        self._started = time.monotonic()
        self._last_line: _Sample | None = None
        self._history: deque[_Sample] = deque()

    def _sample(self, snapshot: StatsSnapshot | None, now: float) -> _Sample:
        counters = self._counters()
        if snapshot is None:
            return _Sample(now, counters.read, 0, counters.dropped)
        frames_in = max(counters.read, snapshot.frames_in)
        dropped = snapshot.dropped + snapshot.discarded + counters.dropped
        return _Sample(now, frames_in, snapshot.frames_out, dropped)

    def _status(
        self,
        snapshot: StatsSnapshot | None,
        sample: _Sample,
        base: _Sample | None,
        latencies: Sequence[float],
    ) -> LiveStatus:
        counters = self._counters()
        elapsed = snapshot.elapsed_s if snapshot is not None else sample.at - self._started
        if base is None:
            span = max(elapsed, 1e-6)
            base = _Sample(sample.at - span, 0, 0, 0)
        span = max(sample.at - base.at, 1e-6)
        p50, p95 = latency_percentiles(latencies)
        return LiveStatus(
            elapsed_s=elapsed,
            fps_in=(sample.frames_in - base.frames_in) / span,
            fps_out=(sample.frames_out - base.frames_out) / span,
            latency_p50_ms=p50,
            latency_p95_ms=p95,
            frames_in=sample.frames_in,
            frames_out=sample.frames_out,
            dropped=sample.dropped,
            drops_per_s=(sample.dropped - base.dropped) / span,
            reconnects=counters.reconnects,
            outages=counters.outages,
            in_outage=counters.in_outage,
            style_id=self._style_id(),
        )

    def observe(self, snapshot: StatsSnapshot | None = None) -> None:
        """Record the numbers now (the pipeline's monitor calls this often), so that
        :meth:`current` has a recent past to compute rates over."""
        now = time.monotonic()
        snapshot = snapshot if snapshot is not None else self._snapshot()
        sample = self._sample(snapshot, now)
        with self._lock:
            self._history.append(sample)
            while len(self._history) > 1 and now - self._history[1].at >= self._window_s:
                self._history.popleft()

    def interval_status(self, snapshot: StatsSnapshot | None = None) -> LiveStatus:
        """The status over the interval since the previous call (the periodic status line; the
        first call covers the run so far)."""
        now = time.monotonic()
        snapshot = snapshot if snapshot is not None else self._snapshot()
        sample = self._sample(snapshot, now)
        with self._lock:
            base, self._last_line = self._last_line, sample
        since = None if base is None else base.at
        return self._status(snapshot, sample, base, self.latencies.since(since))

    def current(self) -> LiveStatus:
        """The status NOW, over about the last ``window_s`` (``get-status``): computed on each
        request from the live counters, whatever the status-line interval is (also 0)."""
        now = time.monotonic()
        snapshot = self._snapshot()
        sample = self._sample(snapshot, now)
        with self._lock:
            base = next(
                (s for s in self._history if now - s.at <= self._window_s and s.at < now),
                None,
            )
        return self._status(snapshot, sample, base, self.latencies.since(now - self._window_s))

    def current_dict(self) -> dict[str, Any]:
        """:meth:`current` as a JSON-ready dict (the control endpoint's status callback)."""
        return self.current().as_dict()


__all__ = [
    "STAGES",
    "LatencyProbe",
    "LatencyWindow",
    "LiveStatus",
    "LiveStatusTracker",
    "PipelineStats",
    "StatsSnapshot",
    "latency_percentiles",
    "percentile",
]
