"""What webcam and network sources share: a reader thread that never waits for the consumer.

A live source must keep reading at the source's pace (a camera's driver buffers, a server's
socket) whatever the consumer does; otherwise frames queue up upstream and latency grows. The
reader thread puts each frame into a drop-oldest :class:`streamer.queues.FrameQueue` that keeps
only the newest ``capacity`` frames, dropping (and counting) older ones; the consumer takes from
it.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from streamer.queues import FrameQueue

log = logging.getLogger(__name__)


def newest_frames(capacity: int = 1) -> FrameQueue:
    """The hand-over from a reader thread: keeps the newest ``capacity`` items (``dropped``
    counts the ones replaced before the consumer took them)."""
    return FrameQueue(capacity, drop_oldest=True, poll_s=0.5)


def run_producer(name: str, body: Callable[[], None], queue: FrameQueue) -> threading.Thread:
    """Start ``body`` in a daemon thread; when it returns or raises, ``queue`` is finished
    (with the error, so the consumer sees it)."""

    def target() -> None:
        try:
            body()
        except BaseException as err:
            log.debug("%s stopped with %r", name, err)
            queue.finish(err)
        else:
            queue.finish()

    thread = threading.Thread(target=target, name=name, daemon=True)
    thread.start()
    return thread
