"""Network video input (RTSP, RTMP, HTTP/HLS, SRT, UDP...) through PyAV, built to stay up.

- TCP for RTSP by default (no lost packets, no smeared frames), open and read timeouts,
  low-latency demuxer and decoder settings.
- When the stream drops (server gone, network down, no data within ``read_timeout_s``, or the
  stream ends), the reader reconnects with bounded exponential backoff while the rest of the
  pipeline keeps running. During an outage nothing is published (``during_outage="pause"``) or
  the last frame is repeated at the stream's rate (``"repeat"``). Outages are counted and
  logged; one that lasts ``give_up_after_s`` ends the stream with :class:`StreamLostError`.
- A reader thread decodes continuously and keeps only the newest frame(s) for the consumer;
  older ones are dropped and counted, so a slow model never builds latency.
- Output timestamps are continuous across reconnects: each new connection's timestamps (which
  restart at a random offset, and the first of which may be None) are rebased after the last
  frame's, plus the outage's duration, so a recording of a relayed stream stays monotonic.
- Audio: the first audio stream is :attr:`NetworkSource.audio` (an
  :class:`~streamer.sources.audio_feed.AudioFeed` the outputs read), demuxed from the same
  container as the video, on the frames' rebased clock; after a reconnect it goes on.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from fractions import Fraction
from typing import Any

import av
import av.codec.context
import numpy as np

from streamer.frames import Frame, FrameSource, SourceCounters, SourceInfo
from streamer.queues import END
from streamer.sources import NETWORK_SCHEMES, is_network_url
from streamer.sources.audio_feed import AudioFeed
from streamer.sources.network_config import (
    NetworkSourceConfig,
    NetworkStats,
    StreamLostError,
    StreamOpenError,
)
from streamer.sources.reader_thread import newest_frames, run_producer

log = logging.getLogger(__name__)
__all__ = [
    "NETWORK_SCHEMES",
    "NetworkSource",
    "NetworkSourceConfig",
    "StreamLostError",
    "StreamOpenError",
    "is_network_url",
]

DEFAULT_TIME_BASE = Fraction(1, 90000)
_AV_ERRORS = (av.error.FFmpegError, OSError, EOFError)


@dataclass
class _Segment:
    """One connection's timestamps mapped onto the output timeline: a frame's output time is
    ``offset`` ticks + its time since ``first_pts`` (stream ticks of ``time_base``)."""

    time_base: Fraction  # the video stream's
    offset: int  # output ticks (DEFAULT_TIME_BASE) where this connection continues
    start_wall: float
    first_pts: int | None = None  # anchored by the first timestamped frame

    def shift_s(self, output_time_base: Fraction) -> float | None:
        """Seconds from a packet's input time to the output timeline (None before a frame)."""
        if self.first_pts is None:
            return None
        return float(self.first_pts * self.time_base - self.offset * output_time_base)


@dataclass(frozen=True)
class _Decoded:
    index: int
    frame: av.VideoFrame  # converted to RGB by the consumer: dropped frames cost no conversion
    pts: int
    capture_time_s: float


class NetworkSource(FrameSource):
    """A live network stream as a :class:`~streamer.frames.FrameSource` (always live).

    Use in a ``with`` block: opening connects (fail fast with :class:`StreamOpenError`) and
    starts the reader thread; iterating yields the newest frames; closing stops and joins.
    """

    def __init__(self, config: NetworkSourceConfig | str, **options: Any) -> None:
        if isinstance(config, str):
            config = NetworkSourceConfig(config, **options)
        elif options:
            raise TypeError("give either a NetworkSourceConfig or a URL with options")
        self.config = config
        self.stats = NetworkStats()
        self.time_base = DEFAULT_TIME_BASE
        self.width: int | None = None
        self.height: int | None = None
        self.frame_interval_s = 1 / 30
        self._buffer = newest_frames(config.max_queue_frames)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._container: av.container.InputContainer | None = None
        self._outage_started: float | None = None
        self._segment: dict[str, Any] = {}
        self._last_pts: int | None = None
        self._last_wall: float | None = None
        self._next_index = 0
        self.audio: AudioFeed | None = None  # the first audio stream, for the outputs

    @property
    def url(self) -> str:
        return self.config.url

    @property
    def live(self) -> bool:
        return True

    @property
    def in_outage(self) -> bool:
        return self._outage_started is not None

    def info(self) -> SourceInfo:
        """Frame rate: the stream's declared one, refined by the measured frame interval."""
        rate = Fraction(1 / self.frame_interval_s).limit_denominator(1000)
        return SourceInfo(
            frame_rate=rate, width=self.width, height=self.height, time_base=self.time_base
        )

    def counters(self) -> SourceCounters:
        return SourceCounters(
            read=self.stats.frames_read,
            dropped=self._buffer.dropped,
            reconnects=self.stats.reconnects,
            outages=self.stats.outages,
            in_outage=self.in_outage,
        )

    # -- connection -----------------------------------------------------------------------
    def _open(self, open_timeout_s: float) -> av.container.InputContainer:
        container = av.open(
            self.config.url,
            options=self.config.av_options(),
            timeout=(open_timeout_s, self.config.read_timeout_s),
        )
        try:
            if not container.streams.video:
                raise StreamOpenError(f"{self.config.url} has no video stream")
            stream = container.streams.video[0]
            if self.config.low_latency:
                # Frame threading holds back one frame per thread; slices do not.
                stream.codec_context.thread_type = "SLICE"
                stream.codec_context.flags |= av.codec.context.Flags.low_delay
            self.width = stream.codec_context.width or self.width
            self.height = stream.codec_context.height or self.height
            rate = stream.average_rate or stream.guessed_rate
            if rate:
                self.frame_interval_s = float(1 / rate)
        except BaseException:
            container.close()
            raise
        return container

    def open(self) -> None:
        if self._thread is not None:  # already open (opening twice is harmless)
            return
        started = time.monotonic()
        try:
            self._container = self._open(self.config.open_timeout_s)
        except StreamOpenError:
            raise
        except _AV_ERRORS as err:
            raise StreamOpenError(
                f"cannot open {self.config.url}: {_describe(err)} (after "
                f"{time.monotonic() - started:.1f} s); check the URL and that the server is "
                "running"
                + (", or try --transport udp" if self.config.scheme.startswith("rtsp") else "")
            ) from err
        self.stats.connected = True
        if self._container.streams.audio:
            self.audio = AudioFeed(self._container.streams.audio[0])
        log.info(
            "opened %s (%sx%s, %.1f fps) in %.2f s",
            self.config.url,
            self.width,
            self.height,
            1 / self.frame_interval_s,
            time.monotonic() - started,
        )
        self._thread = run_producer(f"read {self.config.url}", self._read_forever, self._buffer)

    def interrupt(self) -> None:
        """Make a waiting iterator return soon (the pipeline calls this when it stops)."""
        self._stop.set()

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=self.config.open_timeout_s + self.config.read_timeout_s + 1)
            if self._thread.is_alive():
                log.warning("reader of %s did not stop in time", self.config.url)
            self._thread = None
        if self._container is not None:  # never started, or the thread left it
            self._container.close()
            self._container = None

    # -- reader thread --------------------------------------------------------------------
    def _read_forever(self) -> None:
        container = self._container
        while not self._stop.is_set():
            assert container is not None
            try:
                self._stream(container)
                reason = "the server ended the stream"
                if self.config.end_of_stream == "stop" and not self._stop.is_set():
                    log.info("%s: %s", self.config.url, reason)
                    return
            except _AV_ERRORS as err:
                reason = _describe(err)
            finally:
                container.close()
                self._container = None
                self.stats.connected = False
            if self._stop.is_set():
                return
            container = self._reconnect(reason)
            if container is None:
                return
            self._container = container
            self.stats.connected = True

    def _stream(self, container: av.container.InputContainer) -> None:
        stream = container.streams.video[0]
        # Where this connection's timestamps continue the output timeline.
        if self._last_pts is None:
            offset = 0
        else:
            gap_s = max(0.0, time.time() - (self._last_wall or time.time()))
            offset = self._last_pts + max(1, round(gap_s / self.time_base))
        segment = _Segment(stream.time_base or DEFAULT_TIME_BASE, offset, time.time())
        sound = None if self.audio is None else self.audio.stream_in(container, self.url)
        for packet in container.demux(stream, *([sound] if sound is not None else [])):
            if self._stop.is_set():
                return
            if packet.stream.type == "audio":
                shift_s = segment.shift_s(self.time_base)
                if self.audio is not None and shift_s is not None:  # after the first frame
                    self.audio.add_packet(packet, shift_s)
                continue
            for decoded in packet.decode():
                if self._stop.is_set():
                    return
                self._take(decoded, segment)

    def _take(self, decoded: av.VideoFrame, segment: _Segment) -> None:
        """One decoded frame onto the output timeline and into the newest-frames buffer."""
        now = time.time()
        if self._outage_started is not None:
            lasted = time.monotonic() - self._outage_started
            self.stats.outage_time_s += lasted
            self.stats.reconnects += 1
            self._outage_started = None
            log.warning("%s: stream back after %.1f s outage", self.config.url, lasted)
        if decoded.pts is None or segment.first_pts is None:
            relative_s = now - segment.start_wall
            if decoded.pts is not None:
                # First timestamped frame anchors the segment at its wall-clock position.
                segment.first_pts = decoded.pts - round(relative_s / segment.time_base)
        else:
            relative_s = float((decoded.pts - segment.first_pts) * segment.time_base)
        pts = segment.offset + round(relative_s / self.time_base)
        if self._last_pts is not None and pts <= self._last_pts:
            pts = self._last_pts + 1
        if self._last_wall is not None:
            interval = now - self._last_wall
            if 0 < interval < 1:
                self.frame_interval_s += 0.1 * (interval - self.frame_interval_s)
        self._last_pts = pts
        self._last_wall = now
        self._buffer.put(_Decoded(self._next_index, decoded, pts, now))
        self._next_index += 1
        self.stats.frames_read += 1

    def _reconnect(self, reason: str) -> av.container.InputContainer | None:
        """Reconnect with exponential backoff; None when stopped; raises on give-up."""
        config = self.config
        self.stats.last_error = reason
        if self._outage_started is None:
            self._outage_started = time.monotonic()
            self.stats.outages += 1
        if not config.reconnect:
            raise StreamLostError(f"{config.url}: stream lost ({reason}); reconnecting is off")
        log.warning(
            "%s: stream lost (%s); reconnecting (outage %d, giving up after %.0f s)",
            config.url,
            reason,
            self.stats.outages,
            config.give_up_after_s,
        )
        delay = config.backoff_initial_s
        attempts = 0
        while not self._stop.is_set():
            elapsed = time.monotonic() - self._outage_started
            remaining = config.give_up_after_s - elapsed
            if remaining <= 0:
                self.stats.outage_time_s += elapsed
                raise StreamLostError(
                    f"{config.url}: no stream for {elapsed:.1f} s after {attempts} reconnect "
                    f"attempt(s) (last error: {reason}); giving up. Check the server, or allow "
                    "a longer outage with --give-up-after-s"
                )
            attempts += 1
            try:
                container = self._open(min(config.open_timeout_s, max(remaining, 0.2)))
            except _AV_ERRORS as err:
                reason = _describe(err)
                self.stats.last_error = reason
                log.info("%s: reconnect attempt %d failed: %s", config.url, attempts, reason)
            else:
                log.info("%s: reconnected (attempt %d)", config.url, attempts)
                return container
            self._stop.wait(min(delay, max(0.0, remaining - 0.01)))
            delay = min(delay * 2, config.backoff_max_s)
        return None

    # -- consumer side --------------------------------------------------------------------
    def _to_frame(self, item: _Decoded) -> Frame:
        image = item.frame.to_ndarray(format="rgb24")
        return Frame(
            index=item.index,
            image=np.ascontiguousarray(image),
            pts=item.pts,
            time_base=self.time_base,
            capture_time_s=item.capture_time_s,
        )

    def __iter__(self) -> Iterator[Frame]:
        if self._thread is None:
            raise RuntimeError("use the source in a `with` block before iterating it")
        last: Frame | None = None
        repeat = self.config.during_outage == "repeat"
        while not self._stop.is_set():
            wait_s = self.frame_interval_s if repeat and self.in_outage else 0.1
            item = self._buffer.get(timeout_s=wait_s)
            if item is END:
                return
            if item is not None:
                last = self._to_frame(item)
                yield last
            elif repeat and last is not None and self.in_outage:
                # The same picture again (same index and pts), captured "now".
                yield replace(last, capture_time_s=time.time())


def _describe(err: BaseException) -> str:
    if isinstance(err, av.error.FFmpegError):
        text = err.strerror or str(err)
        if "Immediate exit" in text or isinstance(err, av.error.ExitError):
            return "timed out"
        return text
    if isinstance(err, EOFError):
        return "end of stream"
    return str(err) or type(err).__name__
