"""``stylestream view ENDPOINT``: watch (in any browser) and/or record a published stream.

A subscriber thread receives frames; a small local HTTP server shows them as MJPEG
(``multipart/x-mixed-replace``: every browser plays it with a plain ``<img>``, no plugin, and
it works on headless machines through an SSH tunnel). Endpoints::

    /             the page (streamer/web/index.html): the picture and a status line
    /stream.mjpg  the stream itself
    /frame.jpg    the newest frame (one JPEG)
    /status.json  the newest header, fps, latency, frames received (and ``streams``: names)

From a ``stylestream serve`` publisher (one topic per stream) without ``stream``, the page is a
grid of every stream seen so far, each from::

    /stream/NAME.mjpg, /frame/NAME.jpg, /streams.json (each stream's status)

With ``stream`` only that stream is received (its ZeroMQ topic) and shown.

For OBS / vMix / a kiosk (:mod:`streamer.outputs.pages`)::

    /source, /source/NAME   the bare page: the video alone, filling the window, no controls
    /hls/NAME/              a player for HLS output NAME (``hls``: NAME=DIR), with hls.js
    /hls/NAME/FILE          its playlist and segments; /vendor/hls.min.js the shipped hls.js

``record`` also writes every received frame to an MP4 (timestamps from the frames' capture
times, so the file plays at the pace the stream was captured, gaps included).
JPEG payloads are forwarded to the browser as they are (no re-encoding).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from fractions import Fraction
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import Any

from adaattn_video.errors import StylestreamError
from streamer.frames import Frame
from streamer.outputs.pages import hls_folders
from streamer.zeromq.endpoints import is_loopback_host
from streamer.zeromq.subscriber import (
    ReceivedFrame,
    ReceiveTimeout,
    Subscriber,
    SubscriberConfig,
)
from streamer.zeromq.viewer_http import LatestFrame, make_handler
from streamer.zeromq.wire import WireFormatError, check_stream_name, encode_jpeg

log = logging.getLogger(__name__)

RECORD_TIME_BASE = Fraction(1, 1000)


class ViewerError(StylestreamError, ValueError):
    """A viewer setting is invalid, or its HTTP address cannot be used."""


@dataclass(frozen=True)
class ViewerConfig:
    """What ``stylestream view`` does.

    Attributes:
        endpoint: the publisher (``tcp://127.0.0.1:5555``).
        http: ``HOST:PORT`` of the local page (port 0: any free port), or None for no page.
        record: MP4 file to write every received frame to, or None.
        overwrite: replace an existing ``record`` file.
        curve_keys_dir: keys for an encrypted publisher (``server.key``, ``client.key_secret``).
        seconds / frames: stop after this long / this many frames (None: until Ctrl-C).
        receive_timeout_s: end with an error when no frame arrives for this long (None: wait).
        jpeg_quality: for re-encoding rgb24 streams for the browser.
        allow_remote_http: serve the page beyond loopback.
        stream: receive only this stream of a ``stylestream serve`` (None: all; a grid).
        hls: HLS output folders served at ``/hls/NAME/`` (``NAME=DIR`` or ``DIR``).
    """

    endpoint: str
    http: str | None = "127.0.0.1:8080"
    record: str | None = None
    overwrite: bool = False
    curve_keys_dir: str | None = None
    seconds: float | None = None
    frames: int | None = None
    receive_timeout_s: float | None = None
    jpeg_quality: int = 85
    allow_remote_http: bool = False
    stream: str | None = None
    hls: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        hls_folders(self.hls)  # a bad folder: one line now
        if self.stream is not None:
            try:
                check_stream_name(self.stream)
            except WireFormatError as err:
                raise ViewerError(f"--stream: {err}") from err
        if self.http is None and self.record is None:
            raise ViewerError("nothing to do: serve a page (--http) and/or --record OUT.mp4")
        if self.http is not None:
            host, port = self.http_address
            if not 0 <= port <= 65535:
                raise ViewerError(f"HTTP port must be in 0..65535, got {port}")
            if not self.allow_remote_http and not is_loopback_host(host):
                raise ViewerError(
                    f"refusing to serve the viewer on {host}: other machines could watch; use "
                    "127.0.0.1 (tunnel with ssh -L), or pass --allow-remote-http"
                )
        if self.seconds is not None and self.seconds <= 0:
            raise ViewerError(f"seconds must be > 0, got {self.seconds}")
        if self.frames is not None and self.frames < 1:
            raise ViewerError(f"frames must be >= 1, got {self.frames}")
        if not 1 <= self.jpeg_quality <= 100:
            raise ViewerError(f"jpeg_quality must be in 1..100, got {self.jpeg_quality}")

    @property
    def hls_playlists(self) -> dict[str, Path]:
        """``hls`` as name -> playlist path."""
        return hls_folders(self.hls)

    @property
    def http_address(self) -> tuple[str, int]:
        text = self.http or ""
        host, sep, port = text.rpartition(":")
        if not sep or not port.isdigit():
            raise ViewerError(f"expected --http HOST:PORT (e.g. 127.0.0.1:8080), got {text!r}")
        return host.strip("[]") or "127.0.0.1", int(port)


def subscriber_config(config: ViewerConfig) -> SubscriberConfig:
    """How the viewer receives. Showing: the newest frame only (per stream of a ``serve``, so
    a grid shows every stream; a ``live`` publisher has one stream: its newest frame), so the
    page never lags behind. Recording: every frame, with a deep queue."""
    recording = config.record is not None
    return SubscriberConfig(
        config.endpoint,
        latest_only=not recording,
        receive_timeout_s=None,
        receive_hwm=256 if recording else 4 if config.stream else 16,
        stream=config.stream,
        curve_keys_dir=None if config.curve_keys_dir is None else Path(config.curve_keys_dir),
    )


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True


@dataclass(frozen=True)
class ViewerResult:
    frames: int
    recorded: int
    record: Path | None
    elapsed_s: float


def run_viewer(
    config: ViewerConfig,
    *,
    on_ready: Callable[[dict[str, Any]], None] | None = None,
    stop_event: threading.Event | None = None,
) -> ViewerResult:
    """Receive, show and/or record until ``seconds``/``frames``/``stop_event``/Ctrl-C.

    ``on_ready({"url": ...})`` once the page is served (``url`` None without a page).
    Raises :class:`~streamer.zeromq.subscriber.ReceiveTimeout` when ``receive_timeout_s`` passes
    without a frame; the recording is finalized first.
    """
    recording = None if config.record is None else _Recording(config)
    server: _Server | None = None
    latest = LatestFrame(config.endpoint)
    named: dict[str, LatestFrame] = {}  # per stream of a serve publisher
    subscriber: Subscriber | None = None
    started = time.monotonic()
    frames = 0
    try:
        subscriber = Subscriber(subscriber_config(config))
        server, url = _serve_page(config, latest, named)
        if on_ready is not None:
            on_ready({"url": url})
        for received in _frames(config, subscriber, started, stop_event):
            frames += 1
            if server is not None:
                _show(config, received, latest, named)
            if recording is not None:
                recording.write(received)
    finally:
        latest.close()
        for board in named.values():
            board.close()
        if server is not None:
            server.shutdown()
            server.server_close()
        if subscriber is not None:
            subscriber.close()
        if recording is not None:
            recording.sink.close()
    written = 0 if recording is None else recording.sink.frames_written
    return ViewerResult(
        frames=frames,
        recorded=written,
        record=recording.sink.path if recording is not None and written else None,
        elapsed_s=time.monotonic() - started,
    )


def _serve_page(
    config: ViewerConfig, latest: LatestFrame, named: dict[str, LatestFrame]
) -> tuple[_Server | None, str | None]:
    """The page's HTTP server, serving in a thread, and its URL; (None, None) without ``http``."""
    if config.http is None:
        return None, None
    host, port = config.http_address
    try:
        server = _Server((host, port), make_handler(latest, named, config.hls_playlists))
    except OSError as err:
        raise ViewerError(f"cannot serve the viewer on {config.http}: {err.strerror}") from err
    threading.Thread(target=server.serve_forever, name="viewer-http", daemon=True).start()
    bound_host, bound_port = server.server_address[:2]
    url = f"http://{bound_host}:{bound_port}/"
    log.info("viewer: open %s in a browser (stream from %s)", url, config.endpoint)
    return server, url


def _frames(
    config: ViewerConfig,
    subscriber: Subscriber,
    started: float,
    stop_event: threading.Event | None,
) -> Iterator[ReceivedFrame]:
    """Every received frame until ``seconds``/``frames``/``stop_event``; raises
    :class:`ReceiveTimeout` after ``receive_timeout_s`` without one."""
    frames = 0
    last_frame_at = time.monotonic()
    while True:
        if stop_event is not None and stop_event.is_set():
            return
        if config.seconds is not None and time.monotonic() - started >= config.seconds:
            return
        if config.frames is not None and frames >= config.frames:
            return
        try:
            received = subscriber.receive(timeout_s=0.2)
        except ReceiveTimeout:
            waited = time.monotonic() - last_frame_at
            if config.receive_timeout_s is not None and waited >= config.receive_timeout_s:
                raise ReceiveTimeout(
                    f"no frame from {config.endpoint} for {waited:.1f} s; is the publisher "
                    "running (and do the CURVE keys match)?"
                ) from None
            continue
        last_frame_at = time.monotonic()
        frames += 1
        yield received


def _show(
    config: ViewerConfig,
    received: ReceivedFrame,
    latest: LatestFrame,
    named: dict[str, LatestFrame],
) -> None:
    """Put the frame (as JPEG) on the page's board, and on its stream's board (serve)."""
    header = received.header
    jpeg = (
        bytes(received.payload)
        if header.encoding == "jpeg"
        else encode_jpeg(received.image, config.jpeg_quality)
    )
    latest.publish(jpeg, header, received.receive_time)
    if header.stream is not None:
        if header.stream not in named:
            named[header.stream] = LatestFrame(f"{config.endpoint} {header.stream}")
        named[header.stream].publish(jpeg, header, received.receive_time)


class _Recording:
    """The ``record`` MP4: frames timed by their capture times (``RECORD_TIME_BASE`` ticks
    from the first), strictly increasing."""

    def __init__(self, config: ViewerConfig) -> None:
        from streamer.sinks.mp4 import Mp4Sink, Mp4SinkConfig

        assert config.record is not None
        self.sink = Mp4Sink(Mp4SinkConfig(config.record, overwrite=config.overwrite))
        self._first_capture: float | None = None
        self._last_pts = -1

    def write(self, received: ReceivedFrame) -> None:
        header = received.header
        if self._first_capture is None:
            self._first_capture = header.capture_time
        pts = max(
            round((header.capture_time - self._first_capture) / RECORD_TIME_BASE),
            self._last_pts + 1,
        )
        self._last_pts = pts
        self.sink.write(
            Frame(
                index=header.index,
                image=received.image,
                pts=pts,
                time_base=RECORD_TIME_BASE,
                capture_time_s=header.capture_time,
                style_id=header.style_id,
            )
        )
