"""What webcam and network sources share: a reader thread that never waits for the consumer.

A live source must keep reading at the source's pace (a camera's driver buffers, a server's
socket) whatever the consumer does; otherwise frames queue up upstream and latency grows. The
reader thread puts each frame into a :class:`NewestFrames` buffer that keeps only the newest
``capacity`` frames, dropping (and counting) older ones; the consumer takes from it.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from typing import Any, Generic, TypeVar

log = logging.getLogger(__name__)

T = TypeVar("T")


class EndOfStream(Exception):
    """The producer finished (normally; errors are re-raised as themselves)."""


class NewestFrames(Generic[T]):
    """A bounded hand-over from one producer thread to one consumer that drops the OLDEST item
    when full (a live stream wants the newest frame, not a backlog).

    ``dropped`` counts items that were replaced before the consumer took them.
    """

    def __init__(self, capacity: int = 1) -> None:
        if capacity < 1:
            raise ValueError(f"capacity must be >= 1, got {capacity}")
        self._items: deque[T] = deque()
        self._capacity = capacity
        self._cond = threading.Condition()
        self._finished = False
        self._error: BaseException | None = None
        self.dropped = 0
        self.put_count = 0

    def put(self, item: T) -> None:
        with self._cond:
            if len(self._items) >= self._capacity:
                self._items.popleft()
                self.dropped += 1
            self._items.append(item)
            self.put_count += 1
            self._cond.notify()

    def finish(self, error: BaseException | None = None) -> None:
        """No more items; the consumer gets the remaining ones, then ``error`` or the end."""
        with self._cond:
            self._finished = True
            self._error = error
            self._cond.notify_all()

    def get(self, timeout_s: float | None = None) -> T | None:
        """The oldest kept item; None after ``timeout_s`` without one.

        Raises the producer's error, or :class:`EndOfStream`, once the buffer is empty and
        finished.
        """
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        with self._cond:
            while not self._items:
                if self._finished:
                    if self._error is not None:
                        raise self._error
                    raise EndOfStream
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return None
                self._cond.wait(0.5 if remaining is None else min(remaining, 0.5))
            return self._items.popleft()


def run_producer(name: str, body: Callable[[], None], buffer: NewestFrames[T]) -> threading.Thread:
    """Start ``body`` in a daemon thread; when it returns or raises, ``buffer`` is finished
    (with the error, so the consumer sees it)."""

    def target() -> None:
        try:
            body()
        except BaseException as err:
            log.debug("%s stopped with %r", name, err)
            buffer.finish(err)
        else:
            buffer.finish()

    thread = threading.Thread(target=target, name=name, daemon=True)
    thread.start()
    return thread


def drain(buffer: NewestFrames[T], wait_s: float | None) -> Iterator[T]:
    """Yield items from ``buffer`` until it ends (errors propagate)."""
    while True:
        try:
            item = buffer.get(wait_s)
        except EndOfStream:
            return
        if item is not None:
            yield item


def check_live_options(uri: str, start_s: float, duration_s: float | None) -> None:
    """Live inputs have no start or duration to seek to (``open_source`` passes them)."""
    from streamer.sources import SourceError

    if start_s:
        raise SourceError(f"--start does not apply to the live input {uri}")
    if duration_s is not None:
        raise SourceError(
            f"--duration does not apply to the live input {uri}; stop a live run with "
            "--seconds or Ctrl-C"
        )


def build_config(config_type: type, uri: str, options: dict[str, Any]) -> Any:
    """``config_type(uri, **options)`` with unknown options reported as a SourceError."""
    from streamer.sources import SourceError

    try:
        return config_type(uri, **options)
    except TypeError as err:
        raise SourceError(f"options {sorted(options)} do not all apply to {uri}: {err}") from err
