"""A push-fed stream source: frames arrive from outside (a browser's WebRTC track) instead of
being read from a URL, and the serve engine consumes them like any other live source.

The producer (e.g. the studio's asyncio loop) calls :meth:`PushSource.push`; the stream's
reader thread iterates the source. The hand-over is a drop-oldest
:class:`~streamer.queues.FrameQueue` that keeps only the newest ``capacity`` frames, so a
producer faster than the model never builds latency: the oldest waiting frame is dropped and
counted (``counters().dropped``, which the stream's status adds to its drops).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from fractions import Fraction

import numpy as np

from streamer.frames import Frame, FrameSource, SourceCounters, SourceInfo
from streamer.queues import END, FrameQueue

MILLISECONDS = Fraction(1, 1000)


class PushSource(FrameSource):
    """A live :class:`~streamer.frames.FrameSource` fed by :meth:`push` from any thread.

    Iteration ends after :meth:`close` (or :meth:`interrupt`, which the serve engine calls when
    the stream is removed), once the frames still waiting are taken. Each pushed image becomes a
    :class:`Frame` with a running ``index`` and ``capture_time_s`` = the time it was pushed (the
    server received it), so the stream's latency is receive -> stylized -> handed to its
    outputs; ``pts`` is that time in milliseconds since the first push (a recording keeps the
    real timing).
    """

    def __init__(self, capacity: int = 1) -> None:
        self._queue = FrameQueue(capacity, drop_oldest=True, poll_s=0.5)
        self._index = 0
        self._lock = threading.Lock()
        self._started: float | None = None
        self._size: tuple[int, int] | None = None  # (width, height) of the first frame
        self.closed = False

    @property
    def live(self) -> bool:
        return True

    def open(self) -> None:
        """Nothing to open: frames arrive by :meth:`push`."""

    def push(self, image: np.ndarray, *, capture_time_s: float | None = None) -> Frame:
        """Hand over one (H, W, 3) uint8 RGB image; returns the :class:`Frame` made of it.

        Never blocks: when the consumer has not taken the previous frame(s) yet, the oldest is
        dropped (counted). Pushing after close is ignored (the returned frame goes nowhere)."""
        if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
            raise ValueError(
                f"expected an (H, W, 3) uint8 RGB image, got {image.shape} {image.dtype}"
            )
        now = time.time() if capture_time_s is None else capture_time_s
        with self._lock:
            if self._started is None:
                self._started = now
                self._size = (image.shape[1], image.shape[0])
            frame = Frame(
                self._index,
                np.ascontiguousarray(image),
                pts=round(1000 * (now - self._started)),
                time_base=MILLISECONDS,
                capture_time_s=now,
            )
            self._index += 1
        if not self.closed:
            self._queue.put(frame)
        return frame

    def __iter__(self) -> Iterator[Frame]:
        while True:
            item = self._queue.get()
            if item is END:
                return
            if isinstance(item, Frame):
                yield item

    def info(self) -> SourceInfo:
        """No nominal rate or length (frames come as the producer sends them); the size once
        the first frame arrived; pts in milliseconds."""
        with self._lock:
            size = self._size
        width, height = size if size is not None else (None, None)
        return SourceInfo(width=width, height=height, time_base=MILLISECONDS)

    def counters(self) -> SourceCounters:
        with self._lock:
            pushed = self._index
        return SourceCounters(read=pushed, dropped=self._queue.dropped)

    def close(self) -> None:
        """No more frames: the iteration ends once the frames still waiting are taken."""
        self.closed = True
        self._queue.finish()

    def interrupt(self) -> None:
        self.close()

    def __enter__(self) -> PushSource:
        self.open()
        return self
