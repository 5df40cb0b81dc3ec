"""The one bounded queue between two threads: pipeline stages, and a live source's reader
thread and its consumer.

A full queue either blocks the producer (files: every frame matters) or discards its oldest item
and counts it (live sources: a stale frame is worth less than a current one). Every wait takes a
stop event and wakes up at least every ``poll_s`` to look at it, so no stage can hang on a queue
after the pipeline was told to stop. A producer ends either by putting :data:`END` or by
:meth:`FrameQueue.finish` (optionally with its error, which the consumer then gets raised).
"""

from __future__ import annotations

import threading
import time
from collections import deque


class _EndOfStream:
    """The marker a stage puts after its last item (never dropped: it is always the newest)."""

    def __repr__(self) -> str:
        return "END"


END = _EndOfStream()


class FrameQueue:
    """A bounded FIFO for frames (or batches) between two threads.

    Args:
        maxsize: items held at most (>= 1).
        drop_oldest: when full, ``put`` discards the oldest item (counted in ``dropped``)
            instead of waiting.
        poll_s: longest sleep before a waiting call looks at its stop event again.
    """

    def __init__(self, maxsize: int, *, drop_oldest: bool = False, poll_s: float = 0.1) -> None:
        if maxsize < 1:
            raise ValueError(f"maxsize must be >= 1, got {maxsize}")
        if poll_s <= 0:
            raise ValueError(f"poll_s must be > 0, got {poll_s}")
        self.maxsize = maxsize
        self.drop_oldest = drop_oldest
        self.poll_s = poll_s
        self.dropped = 0
        self.put_count = 0
        self._items: deque[object] = deque()
        self._cond = threading.Condition()
        self._finished = False
        self._error: BaseException | None = None

    def __len__(self) -> int:
        return len(self._items)

    def put(self, item: object, stop: threading.Event | None = None) -> bool:
        """Append ``item``; False when ``stop`` was set before there was room (blocking mode)."""
        with self._cond:
            while len(self._items) >= self.maxsize:
                if self.drop_oldest:
                    self._items.popleft()
                    self.dropped += 1
                    break
                if stop is not None and stop.is_set():
                    return False
                self._cond.wait(self.poll_s)
            self._items.append(item)
            self.put_count += 1
            self._cond.notify_all()
            return True

    def finish(self, error: BaseException | None = None) -> None:
        """The producer is done: once the queue is empty, :meth:`get` returns :data:`END`, or
        raises ``error`` (a reader thread's failure reaches the consumer as itself). Unlike
        putting END, this never drops a frame from a full drop-oldest queue."""
        with self._cond:
            self._finished = True
            self._error = error
            self._cond.notify_all()

    def get(self, stop: threading.Event | None = None, timeout_s: float | None = None) -> object:
        """The oldest item; None when ``stop`` is set or ``timeout_s`` passed first; END (or the
        producer's error raised) when finished and empty."""
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        with self._cond:
            while not self._items:
                if self._finished:
                    if self._error is not None:
                        raise self._error
                    return END
                if stop is not None and stop.is_set():
                    return None
                wait = self.poll_s
                if deadline is not None:
                    wait = min(wait, deadline - time.monotonic())
                    if wait <= 0:
                        return None
                self._cond.wait(wait)
            item = self._items.popleft()
            self._cond.notify_all()
            return item

    def get_nowait(self) -> object:
        """The oldest item, or None when empty."""
        with self._cond:
            if not self._items:
                return None
            item = self._items.popleft()
            self._cond.notify_all()
            return item

    def discard_until_end(self, stop: threading.Event | None = None) -> int:
        """Drop items until (and including) :data:`END`; returns how many frames were dropped.

        Returns early (END not seen) when ``stop`` is set.
        """
        discarded = 0
        while True:
            item = self.get(stop)
            if item is None or item is END:
                return discarded
            discarded += 1
