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
from dataclasses import dataclass, field

import av

from streamer.studio.markers import read_marker

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
