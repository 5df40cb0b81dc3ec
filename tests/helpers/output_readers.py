"""Independent readers for the output tests: decode what a server relays with PyAV.

:class:`StreamReader` runs in a thread: it opens a URL (retrying until it can), demuxes every
packet, decodes the video ones and records each picture's size, the frame marker drawn into it
(:func:`streamer.studio.markers.read_marker`) and the wall time it was decoded. RTMP readers
need a short probe (``probesize=32768``, ``analyzeduration=200000``), or FFmpeg waits seconds
for streams a live FLV announces late.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from fractions import Fraction

import av
import numpy as np

from streamer.frames import Frame, FrameSink
from streamer.studio.markers import draw_marker, read_marker

SHORT_PROBE = {"probesize": "32768", "analyzeduration": "200000"}


@dataclass
class Decoded:
    width: int
    height: int
    marker: int | None
    at: float  # time.time() when decoded


@dataclass
class StreamReader:
    """Read ``url`` until ``stop()`` or ``count`` pictures; reopen after errors until stopped."""

    url: str
    count: int = 10**9
    options: dict[str, str] = field(default_factory=lambda: dict(SHORT_PROBE))
    av_format: str | None = None
    frames: list[Decoded] = field(default_factory=list)
    opens: int = 0
    errors: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> StreamReader:
        self._thread.start()
        return self

    def stop(self, timeout_s: float = 10.0) -> None:
        self._stop.set()
        self._thread.join(timeout_s)

    def wait(self, count: int, timeout_s: float) -> bool:
        deadline = time.monotonic() + timeout_s
        while len(self.frames) < count and time.monotonic() < deadline:
            time.sleep(0.05)
        return len(self.frames) >= count

    def _run(self) -> None:
        while not self._stop.is_set() and len(self.frames) < self.count:
            try:
                with av.open(
                    self.url, options=self.options, format=self.av_format, timeout=(5, 3)
                ) as container:
                    if not container.streams.video:  # joined before the publisher: again
                        time.sleep(0.2)
                        continue
                    self.opens += 1
                    self._read(container)
            except (av.error.FFmpegError, OSError, EOFError, IndexError) as err:
                self.errors.append(f"{type(err).__name__}: {err}")
                time.sleep(0.2)

    def _read(self, container: av.container.InputContainer) -> None:
        # a stream the demuxer finds later is not in PyAV's list: only the probed video is read
        for packet in container.demux():
            if self._stop.is_set() or len(self.frames) >= self.count:
                return
            if packet.stream.type != "video":
                continue
            for frame in packet.decode():
                image = frame.to_ndarray(format="rgb24")
                self.frames.append(
                    Decoded(frame.width, frame.height, read_marker(image), time.time())
                )


def marker_frame(index: int, width: int = 320, height: int = 240, fps: int = 30) -> Frame:
    """A noisy frame with ``index`` drawn as a frame marker, pts on a 1/90000 clock at ``fps``."""
    rng = np.random.default_rng(index)
    image = rng.integers(40, 200, (height, width, 3), dtype=np.uint8)
    draw_marker(image, index)
    return Frame(
        index,
        image,
        pts=index * 90000 // fps,
        time_base=Fraction(1, 90000),
        capture_time_s=time.time(),
    )


def feed(
    sink: FrameSink,
    count: int,
    *,
    fps: int = 30,
    start: int = 0,
    width: int = 320,
    height: int = 240,
    on_frame: Callable[[int], None] | None = None,
) -> float:
    """Write ``count`` marker frames at ``fps`` (real time); returns the longest ``write``
    call in seconds (a non-blocking sink stays far below a frame interval)."""
    longest = 0.0
    t0 = time.monotonic()
    for i in range(start, start + count):
        frame = marker_frame(i, width, height, fps)
        began = time.monotonic()
        sink.write(frame)
        longest = max(longest, time.monotonic() - began)
        if on_frame is not None:
            on_frame(i)
        time.sleep(max(0.0, t0 + (i - start + 1) / fps - time.monotonic()))
    return longest


def read_file_frames(path: str) -> list[Decoded]:
    """Every picture of a recorded file (MPEG-TS from the RTSP/SRT servers), decoded."""
    found: list[Decoded] = []
    with av.open(path) as container:
        for frame in container.decode(video=0):
            image = frame.to_ndarray(format="rgb24")
            found.append(Decoded(frame.width, frame.height, read_marker(image), time.time()))
    return found


def feed_in_background(sink: FrameSink, *, fps: int = 30) -> Callable[[], None]:
    """Feed marker frames (counting on, so timestamps keep rising) in a thread until the
    returned ``stop()`` is called."""
    stop = threading.Event()

    def run() -> None:
        start = 0
        while not stop.is_set():
            feed(sink, fps, fps=fps, start=start)
            start += fps

    thread = threading.Thread(target=run, daemon=True)
    thread.start()

    def stopper() -> None:
        stop.set()
        thread.join()

    return stopper
