"""A push-fed stream source: frames arrive from outside (a browser's WebRTC track) instead of
being read from a URL, and the serve engine consumes them like any other live source.

The producer (e.g. the studio's asyncio loop) calls :meth:`PushSource.push`; the stream's
reader thread iterates the source. The hand-over keeps only the newest ``capacity`` frames, so
a producer faster than the model never builds latency: the oldest waiting frame is dropped and
counted (``dropped_frames``, which the stream's status adds to its drops).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from fractions import Fraction

import numpy as np

from streamer.frames import Frame
from streamer.sources.live import EndOfStream, NewestFrames

MILLISECONDS = Fraction(1, 1000)


class PushSource:
    """A live :class:`~streamer.frames.FrameSource` fed by :meth:`push` from any thread.

    Iteration ends after :meth:`close` (or :meth:`interrupt`, which the serve engine calls when
    the stream is removed). Each pushed image becomes a :class:`Frame` with a running ``index``
    and ``capture_time_s`` = the time it was pushed (the server received it), so the stream's
    latency is receive -> stylized -> handed to its outputs; ``pts`` is that time in
    milliseconds since the first push (a recording keeps the real timing).
    """

    live = True

    def __init__(self, capacity: int = 1) -> None:
        self._buffer: NewestFrames[Frame] = NewestFrames(capacity)
        self._index = 0
        self._lock = threading.Lock()
        self._started: float | None = None
        self.closed = False

    @property
    def dropped_frames(self) -> int:
        return self._buffer.dropped

    @property
    def pushed(self) -> int:
        return self._index

    def push(self, image: np.ndarray, *, capture_time_s: float | None = None) -> Frame:
        """Hand over one (H, W, 3) uint8 RGB image; returns the :class:`Frame` made of it.

        Never blocks: when the consumer has not taken the previous frame(s) yet, the oldest is
        dropped. Pushing after close is ignored (the returned frame goes nowhere)."""
        if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
            raise ValueError(
                f"expected an (H, W, 3) uint8 RGB image, got {image.shape} {image.dtype}"
            )
        now = time.time() if capture_time_s is None else capture_time_s
        with self._lock:
            if self._started is None:
                self._started = now
            frame = Frame(
                self._index,
                np.ascontiguousarray(image),
                pts=round(1000 * (now - self._started)),
                time_base=MILLISECONDS,
                capture_time_s=now,
            )
            self._index += 1
        if not self.closed:
            self._buffer.put(frame)
        return frame

    def __iter__(self) -> Iterator[Frame]:
        while True:
            try:
                frame = self._buffer.get(0.5)
            except EndOfStream:
                return
            if frame is not None:
                yield frame

    def close(self) -> None:
        """No more frames: the iteration ends once the frames still waiting are taken."""
        self.closed = True
        self._buffer.finish()

    interrupt = close

    def __enter__(self) -> PushSource:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
