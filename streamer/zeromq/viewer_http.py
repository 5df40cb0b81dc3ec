"""The viewer's HTTP side: :class:`LatestFrame` (the newest JPEG that waiting clients watch) and
:func:`make_handler`, the routes of ``stylestream view`` (:mod:`streamer.zeromq.viewer` lists
them): the page, MJPEG streams and single frames (one per ``serve`` stream too), the status
JSON, and the OBS browser-source and HLS routes of :mod:`streamer.outputs.pages`."""

from __future__ import annotations

import json
import logging
import threading
import time
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler
from importlib import resources
from pathlib import Path
from typing import Any

from streamer.outputs.pages import output_route
from streamer.zeromq.wire import FrameHeader

log = logging.getLogger("streamer.zeromq.viewer")

BOUNDARY = "stylestreamframe"


class LatestFrame:
    """The newest frame as JPEG, with a sequence number that waiting HTTP clients watch."""

    def __init__(self, endpoint: str) -> None:
        self.endpoint = endpoint
        self._cond = threading.Condition()
        self.sequence = 0
        self.jpeg: bytes | None = None
        self.header: FrameHeader | None = None
        self.received_at = 0.0
        self.latency_ms = 0.0
        self._arrivals: list[float] = []
        self.closed = False

    def publish(self, jpeg: bytes, header: FrameHeader, received_at: float) -> None:
        with self._cond:
            self.jpeg, self.header, self.received_at = jpeg, header, received_at
            self.latency_ms = 1000.0 * (received_at - header.capture_time)
            self.sequence += 1
            self._arrivals = [t for t in self._arrivals if received_at - t < 3.0] + [received_at]
            self._cond.notify_all()

    def wait_newer(self, sequence: int, timeout_s: float) -> tuple[int, bytes | None]:
        with self._cond:
            self._cond.wait_for(lambda: self.sequence > sequence or self.closed, timeout_s)
            return self.sequence, self.jpeg

    def close(self) -> None:
        with self._cond:
            self.closed = True
            self._cond.notify_all()

    def status(self) -> dict[str, Any]:
        with self._cond:
            now = time.time()
            arrivals = [t for t in self._arrivals if now - t < 3.0]
            fps = (len(arrivals) - 1) / (arrivals[-1] - arrivals[0]) if len(arrivals) > 1 else 0.0
            return {
                "endpoint": self.endpoint,
                "frames": self.sequence,
                "header": None if self.header is None else json.loads(self.header.to_json()),
                "fps": fps,
                "latency_ms": self.latency_ms,
                "stale": self.sequence > 0 and now - self.received_at > 2.0,
            }


def _page() -> bytes:
    return resources.files("streamer").joinpath("web/index.html").read_bytes()


class ViewerHandler(BaseHTTPRequestHandler):
    """The viewer's HTTP routes; :func:`make_handler` binds a subclass to its frames."""

    server_version = "stylestream-viewer"
    latest: LatestFrame
    named: dict[str, LatestFrame]
    playlists: dict[str, Path]
    page: bytes

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("http %s: " + format, self.client_address[0], *args)

    def _send(self, status: HTTPStatus, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.wfile.write(body)

    def _json(self, value: Any) -> None:
        self._send(HTTPStatus.OK, json.dumps(value).encode(), "application/json")

    def _jpeg(self, source: LatestFrame) -> None:
        jpeg = source.jpeg
        if jpeg is None:
            self._send(HTTPStatus.SERVICE_UNAVAILABLE, b"no frame yet\n", "text/plain")
        else:
            self._send(HTTPStatus.OK, jpeg, "image/jpeg")

    def do_GET(self) -> None:
        path = self.path.split("?", 1)[0]
        try:
            answer = output_route(path, self.playlists)
        except FileNotFoundError:
            return self._send(HTTPStatus.NOT_FOUND, b"not found\n", "text/plain")
        if answer is not None:
            self._send(HTTPStatus.OK, *answer)
        elif path.startswith(("/stream/", "/frame/")):
            self._named(path)
        elif path == "/streams.json":
            self._json({name: self.named[name].status() for name in list(self.named)})
        elif path in ("/", "/index.html"):
            self._send(HTTPStatus.OK, self.page, "text/html; charset=utf-8")
        elif path == "/status.json":
            status = self.latest.status()
            self._json({**status, "streams": sorted(self.named), "hls": sorted(self.playlists)})
        elif path == "/frame.jpg":
            self._jpeg(self.latest)
        elif path == "/stream.mjpg":
            self._stream(self.latest)
        else:
            self._send(HTTPStatus.NOT_FOUND, b"not found\n", "text/plain")

    def _named(self, path: str) -> None:
        kind, _, file = path[1:].partition("/")
        name, _, suffix = file.rpartition(".")
        source = self.named.get(name)
        if source is None or (kind, suffix) not in (("stream", "mjpg"), ("frame", "jpg")):
            self._send(HTTPStatus.NOT_FOUND, b"no such stream\n", "text/plain")
        elif kind == "stream":
            self._stream(source)
        else:
            self._jpeg(source)

    def _stream(self, latest: LatestFrame) -> None:
        self.send_response(HTTPStatus.OK)
        self.send_header("Content-Type", f"multipart/x-mixed-replace; boundary={BOUNDARY}")
        self.send_header("Cache-Control", "no-store")
        self.send_header("Connection", "close")
        self.end_headers()
        sequence = 0
        try:
            while not latest.closed:
                sequence, jpeg = latest.wait_newer(sequence, timeout_s=1.0)
                if jpeg is None:
                    continue
                self.wfile.write(
                    f"--{BOUNDARY}\r\nContent-Type: image/jpeg\r\n"
                    f"Content-Length: {len(jpeg)}\r\n\r\n".encode()
                    + jpeg
                    + b"\r\n"
                )
                self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError):
            return  # the browser went away


def make_handler(
    latest: LatestFrame,
    streams: dict[str, LatestFrame] | None = None,
    hls: dict[str, Path] | None = None,
) -> type[BaseHTTPRequestHandler]:
    """A :class:`ViewerHandler` bound to ``latest`` (the newest frame of any stream),
    ``streams`` (per stream name: serve) and ``hls`` (HLS outputs: name -> playlist)."""
    bound = {
        "latest": latest,
        "named": streams if streams is not None else {},
        "playlists": hls or {},
        "page": _page(),
    }
    return type("BoundViewerHandler", (ViewerHandler,), bound)


__all__ = ["BOUNDARY", "LatestFrame", "ViewerHandler", "make_handler"]
