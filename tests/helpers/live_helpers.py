"""Helpers for the live-streaming tests: a paced synthetic live source, running ``run_live``
in a thread, and receiving until a condition holds."""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from fractions import Fraction
from typing import Any

import numpy as np

from helpers.media import pattern_frame
from streamer.frames import Frame, FrameSource, SourceCounters, SourceInfo
from streamer.live import LiveConfig, LiveResult, run_live
from streamer.serve.server import run_serve
from streamer.zeromq.subscriber import ReceivedFrame, ReceiveTimeout, Subscriber


class PatternSource(FrameSource):
    """A live source (like a camera) of :func:`media.pattern_frame` images at ``fps``, endless
    unless ``frames`` is given; frame ``i`` is always ``pattern_frame(i, h, w)``, so a test can
    recompute what any received frame must be."""

    def __init__(
        self, size: tuple[int, int] = (64, 64), fps: float = 30.0, frames: int | None = None
    ):
        self.size = size
        self.fps = fps
        self.frames = frames
        self.frames_read = 0
        self._stop = threading.Event()

    def image(self, index: int) -> np.ndarray:
        return pattern_frame(index, *self.size)

    @property
    def live(self) -> bool:
        return True

    def open(self) -> None:
        pass

    def info(self) -> SourceInfo:
        return SourceInfo(
            frame_rate=Fraction(self.fps).limit_denominator(1000),
            height=self.size[0],
            width=self.size[1],
            time_base=Fraction(1, int(self.fps)),
        )

    def counters(self) -> SourceCounters:
        return SourceCounters(read=self.frames_read)

    def interrupt(self) -> None:
        self._stop.set()

    def close(self) -> None:
        self._stop.set()

    def __iter__(self) -> Iterator[Frame]:
        start = time.monotonic()
        index = 0
        while not self._stop.is_set() and (self.frames is None or index < self.frames):
            delay = start + index / self.fps - time.monotonic()
            if delay > 0:
                self._stop.wait(delay)
            self.frames_read += 1
            yield Frame(
                index,
                self.image(index),
                pts=index,
                time_base=Fraction(1, int(self.fps)),
                capture_time_s=time.time(),
            )
            index += 1


class LiveRun:
    """``run_live`` in a background thread; ``endpoints`` once bound, ``stop()`` and ``result``."""

    def __init__(self, config: LiveConfig, **kwargs: object) -> None:
        self.stop_event = threading.Event()
        self._ready: queue.Queue = queue.Queue()
        self.result: LiveResult | None = None
        self.error: BaseException | None = None
        self.status_lines: list[str] = []

        def target() -> None:
            try:
                self.result = run_live(
                    config,
                    on_ready=self._ready.put,
                    stop_event=self.stop_event,
                    print_status=self.status_lines.append,
                    **kwargs,
                )
            except BaseException as err:
                self.error = err
                self._ready.put(None)

        self.thread = threading.Thread(target=target, name="live-run", daemon=True)
        self.thread.start()
        endpoints = self._ready.get(timeout=60)
        if endpoints is None:
            raise AssertionError(f"live run failed to start: {self.error!r}") from self.error
        self.endpoints: dict = endpoints

    def stop(self, timeout_s: float = 30.0) -> LiveResult:
        self.stop_event.set()
        self.thread.join(timeout_s)
        assert not self.thread.is_alive(), "live run did not stop"
        if self.error is not None:
            raise self.error
        assert self.result is not None
        return self.result


def receive_until(
    subscriber: Subscriber,
    done: Callable[[list[ReceivedFrame]], bool],
    timeout_s: float = 30.0,
) -> list[ReceivedFrame]:
    """Receive frames until ``done(frames)`` is true; AssertionError after ``timeout_s``."""
    frames: list[ReceivedFrame] = []
    deadline = time.monotonic() + timeout_s
    while not done(frames):
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met after {len(frames)} frames in {timeout_s} s")
        try:
            frames.append(subscriber.receive(timeout_s=1.0))
        except ReceiveTimeout:
            continue
    return frames


@contextmanager
def serving(config, model) -> Iterator[dict[str, Any]]:
    """Run ``serve`` in a thread; yields the ready info (+ ``result`` after the block)."""
    info: dict[str, Any] = {}
    ready, stop = threading.Event(), threading.Event()

    def on_ready(details: dict[str, Any]) -> None:
        info.update(details)
        ready.set()

    def target() -> None:
        try:
            info["result"] = run_serve(config, model=model, on_ready=on_ready, stop_event=stop)
        except BaseException as err:  # surfaced below
            info["error"] = err
            ready.set()

    thread = threading.Thread(target=target, name="test-serve")
    thread.start()
    assert ready.wait(60), "serve did not start"
    if "error" in info:
        raise info["error"]
    try:
        yield info
    finally:
        stop.set()
        thread.join(60)
        assert not thread.is_alive(), "serve did not stop"
    if "error" in info:
        raise info["error"]
