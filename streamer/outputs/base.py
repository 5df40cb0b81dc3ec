"""One output = one thread, one bounded queue, one connection that comes back.

:class:`Output` is a :class:`~streamer.frames.FrameSink` whose ``write`` never blocks: the frame
goes into a small drop-oldest queue (the newest frame wins; drops are counted) and the output's
own thread encodes and sends it. So a slow or dead server stalls neither the caller nor any other
output. When sending fails, a network output closes its connection and reconnects with bounded
exponential backoff (the frames that arrive meanwhile are dropped and counted); each connection
starts a fresh encoder, so the server receives a keyframe first. Local outputs (HLS, NDI, a
virtual camera) do not reconnect: an error there leaves the output ``failed`` (logged once).

Subclasses implement :meth:`Output._connect` (open a :class:`Connection` for the first frame's
size) and optionally :meth:`Output.preflight` (check the machine before anything starts).
"""

from __future__ import annotations

import abc
import enum
import logging
import threading
import time
from dataclasses import asdict, dataclass
from typing import Any, Protocol

from streamer.frames import Frame, FrameSink, SourceInfo
from streamer.outputs.spec import OutputSpec
from streamer.queues import END, FrameQueue
from streamer.stats import LatencyWindow, latency_percentiles

log = logging.getLogger(__name__)


class OutputState(str, enum.Enum):
    """Where an output is: ``connecting`` (first connection), ``running``, ``reconnecting``
    (lost its server, backing off), ``failed`` (gave up, or a local output's error), ``closed``."""

    CONNECTING = "connecting"
    RUNNING = "running"
    RECONNECTING = "reconnecting"
    FAILED = "failed"
    CLOSED = "closed"


@dataclass(frozen=True)
class OutputOptions:
    """How an output runs.

    Attributes:
        queue_frames: frames waiting for the encoder at most (the newest win; 1-2 = low latency).
        reconnect: reconnect after a lost connection (network outputs).
        backoff_initial_s / backoff_max_s: wait between attempts, doubling from one to the other.
        give_up_after_s: an outage longer than this fails the output (0 = never give up).
        io_timeout_s: longest a connect or a send may block before it counts as lost.
        close_timeout_s: longest ``close()`` waits for the thread to flush.
    """

    queue_frames: int = 2
    reconnect: bool = True
    backoff_initial_s: float = 0.5
    backoff_max_s: float = 8.0
    give_up_after_s: float = 0.0
    io_timeout_s: float = 5.0
    close_timeout_s: float = 10.0

    def __post_init__(self) -> None:
        if self.queue_frames < 1:
            raise ValueError(f"queue_frames must be >= 1, got {self.queue_frames}")
        for name in ("backoff_initial_s", "io_timeout_s", "close_timeout_s"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be > 0, got {getattr(self, name)}")
        if self.backoff_max_s < self.backoff_initial_s:
            raise ValueError("backoff_max_s must be >= backoff_initial_s")
        if self.give_up_after_s < 0:
            raise ValueError(f"give_up_after_s must be >= 0, got {self.give_up_after_s}")


@dataclass(frozen=True)
class OutputStatus:
    """An output's numbers at one moment (``get-status`` / ``list-streams``).

    ``frames``: frames sent; ``drops``: frames submitted but never sent (queue overflow, outages);
    ``reconnects``: connections re-established after a loss; ``latency_*_ms``: submit -> sent
    (queue wait + colour conversion + encode + mux), over the last frames; ``error``: the last
    failure, redacted.
    """

    output: str
    kind: str
    state: str
    frames: int
    drops: int
    reconnects: int
    latency_p50_ms: float | None
    latency_p95_ms: float | None
    error: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class Connection(Protocol):
    """One open connection (or device/file session) of an output."""

    def send(self, frame: Frame) -> None:
        """Encode and send one frame; raise on a lost connection."""

    def close(self) -> None:
        """Flush and release (must not raise)."""


class Output(FrameSink):
    """A non-blocking, self-healing sink for one :class:`OutputSpec` (see the module doc)."""

    def __init__(
        self, spec: OutputSpec, options: OutputOptions | None = None, info: SourceInfo | None = None
    ) -> None:
        self.spec = spec
        self.options = options or OutputOptions()
        self.info = info or SourceInfo()
        self._queue = FrameQueue(self.options.queue_frames, drop_oldest=True)
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._state = OutputState.CONNECTING
        self._frames = 0
        self._lost = 0
        self._reconnects = 0
        self._error: str | None = None
        self._latencies = LatencyWindow(300)
        self._closed = False

    # -- the subclass's obligations -------------------------------------------------------

    def preflight(self) -> None:
        """Check what this output needs (a program, an extra, a device); raise one
        :class:`~configkit.errors.StylestreamError` line. Called before anything starts."""

    @abc.abstractmethod
    def _connect(self, frame: Frame) -> Connection:
        """Open a connection sized for ``frame`` (raise on failure)."""

    # -- the FrameSink side ---------------------------------------------------------------

    def write(self, frame: Frame) -> None:
        """Queue ``frame`` for sending; never blocks (the oldest queued frame is dropped)."""
        if self._closed:
            return
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._run, name=f"output-{self.spec.kind}", daemon=True
            )
            self._thread.start()
        self._queue.put((frame, time.monotonic()))

    def close(self) -> None:
        """Send what is queued, flush the encoder, close the connection (idempotent)."""
        if self._closed:
            return
        self._closed = True
        self._queue.finish()
        if self._thread is not None:
            self._thread.join(self.options.close_timeout_s)
            if self._thread.is_alive():
                log.warning(
                    "output %s: still busy after %.0f s; left behind",
                    self.spec,
                    self.options.close_timeout_s,
                )
                self._stop.set()
        with self._lock:
            if self._state is not OutputState.FAILED:
                self._state = OutputState.CLOSED

    def status(self) -> OutputStatus:
        """The output's numbers now (thread-safe)."""
        p50, p95 = latency_percentiles(self._latencies.since())
        with self._lock:
            return OutputStatus(
                output=self.spec.redacted(),
                kind=self.spec.kind,
                state=self._state.value,
                frames=self._frames,
                drops=self._lost + self._queue.dropped,
                reconnects=self._reconnects,
                latency_p50_ms=p50,
                latency_p95_ms=p95,
                error=self._error,
            )

    @property
    def state(self) -> OutputState:
        return self._state

    # -- the thread -------------------------------------------------------------------------

    def _set(self, state: OutputState, error: str | None = None) -> None:
        with self._lock:
            self._state = state
            if error is not None:
                self._error = error

    def _run(self) -> None:
        connection: Connection | None = None
        outage_since: float | None = None
        delay = self.options.backoff_initial_s
        retry_at = 0.0
        try:
            while True:
                item = self._queue.get(self._stop)
                if item is None or item is END:
                    return
                frame, submitted = item
                if self._state is OutputState.FAILED:
                    self._lost += 1
                    continue
                if connection is None:
                    if time.monotonic() < retry_at:
                        self._lost += 1
                        continue
                    connection = self._try_connect(frame, outage_since)
                    if connection is None:
                        self._lost += 1
                        outage_since = outage_since or time.monotonic()
                        retry_at = time.monotonic() + delay
                        delay = min(delay * 2, self.options.backoff_max_s)
                        self._check_give_up(outage_since)
                        continue
                    if outage_since is not None:
                        with self._lock:
                            self._reconnects += 1
                        log.info("output %s: reconnected", self.spec)
                    outage_since, delay = None, self.options.backoff_initial_s
                    self._set(OutputState.RUNNING)
                try:
                    connection.send(frame)
                except Exception as err:
                    self._lost += 1
                    connection.close()
                    connection = None
                    self._lose(err)
                    outage_since = time.monotonic()
                    retry_at = outage_since + delay
                    continue
                with self._lock:
                    self._frames += 1
                self._latencies.add((time.monotonic() - submitted) * 1000.0)
        finally:
            if connection is not None:
                connection.close()

    def _try_connect(self, frame: Frame, outage_since: float | None) -> Connection | None:
        try:
            return self._connect(frame)
        except Exception as err:
            if outage_since is None and self._state is OutputState.CONNECTING:
                log.warning(
                    "output %s: cannot connect (%s); retrying", self.spec, self._describe(err)
                )
            self._lose(err, quiet=True)
            return None

    def _lose(self, err: BaseException, *, quiet: bool = False) -> None:
        text = self._describe(err)
        if not (self.spec.network and self.options.reconnect):
            log.error("output %s failed: %s", self.spec, text)
            self._set(OutputState.FAILED, text)
            return
        if not quiet:
            log.warning("output %s lost (%s); reconnecting", self.spec, text)
        state = (
            OutputState.CONNECTING
            if self._state is OutputState.CONNECTING
            else OutputState.RECONNECTING
        )
        self._set(state, text)

    def _check_give_up(self, outage_since: float) -> None:
        limit = self.options.give_up_after_s
        if limit and time.monotonic() - outage_since >= limit:
            log.error("output %s: no server for %.0f s; giving up", self.spec, limit)
            self._set(OutputState.FAILED)

    def _describe(self, err: BaseException) -> str:
        """One line about ``err`` with the URL's secrets masked."""
        text = f"{type(err).__name__}: {err}".splitlines()[0] if str(err) else type(err).__name__
        return self.spec.scrub(text)


__all__ = ["Connection", "Output", "OutputOptions", "OutputState", "OutputStatus"]
