"""ZeroMQ PUB sink: every stylized frame as a [JSON header, payload] message (:mod:`streamer.zeromq.wire`).

A PUB socket never blocks its sender: when a subscriber's queue (``send_hwm`` messages) is full,
ZeroMQ drops that subscriber's messages. A slow or dead subscriber therefore costs at most
``send_hwm`` frames of memory (plus the kernel's socket buffer) and never slows the pipeline.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import zmq

from configkit.checks import at_least, between
from configkit.convert import check_fields, option
from streamer.frames import Frame, FrameSink
from streamer.zeromq.endpoints import bind, check_bind_endpoint
from streamer.zeromq.wire import check_encoding, encode_frame

log = logging.getLogger(__name__)

DEFAULT_ENDPOINT = "tcp://127.0.0.1:5555"


@dataclass(frozen=True)
class PublishOptions:
    """How frames are published: the one declaration of these options, flattened into
    ``live``'s and ``serve``'s configs and handed unchanged to :class:`ZmqSinkConfig`.

    Attributes:
        encoding: ``"jpeg"`` (small, lossy) or ``"rgb24"`` (raw, exact).
        jpeg_quality: 1..100.
        send_hwm: messages queued per subscriber before new ones are dropped for it.
        send_buffer_bytes: kernel send buffer per connection (None = OS default); with
            ``send_hwm`` it bounds the memory and the staleness a slow subscriber can cause.
    """

    encoding: Literal["jpeg", "rgb24"] = option("jpeg", "payload of published frames")
    jpeg_quality: int = option(90, "JPEG quality", metavar="Q", check=between(1, 100))
    send_hwm: int = option(
        8, "frames queued per subscriber before a slow one loses frames", metavar="N",
        check=at_least(1),
    )  # fmt: skip
    send_buffer_bytes: int | None = option(
        None, "kernel send buffer per subscriber", metavar="B", check=at_least(4096)
    )

    def __post_init__(self) -> None:
        check_encoding(self.encoding, self.jpeg_quality)
        check_fields(self, ValueError)


@dataclass(frozen=True)
class ZmqSinkConfig:
    """Where and how frames are published.

    Attributes:
        endpoint: bind address; ``tcp://127.0.0.1:*`` picks a free port (see ``endpoint``
            of the sink for the real one).
        publish: the payload and queue options (:class:`PublishOptions`).
        allow_remote_bind: permit binding a non-loopback address.
        curve_keys_dir: directory from ``stylestream keys generate`` to encrypt and accept only
            authorized subscribers (see :mod:`streamer.zeromq.curve`), or None for plain TCP.
    """

    endpoint: str = DEFAULT_ENDPOINT
    publish: PublishOptions = PublishOptions()
    allow_remote_bind: bool = False
    curve_keys_dir: str | Path | None = None

    def __post_init__(self) -> None:
        check_bind_endpoint(self.endpoint, allow_remote=self.allow_remote_bind)
        if self.curve_keys_dir is not None:  # a config's string or a Path: one type from here
            object.__setattr__(self, "curve_keys_dir", Path(self.curve_keys_dir))

    # The sink reads these (read-only views of ``publish``, not copies).
    encoding = property(lambda self: self.publish.encoding)
    jpeg_quality = property(lambda self: self.publish.jpeg_quality)
    send_hwm = property(lambda self: self.publish.send_hwm)
    send_buffer_bytes = property(lambda self: self.publish.send_buffer_bytes)


class ZmqSink(FrameSink):
    """Publishes frames on a PUB socket (a :class:`~streamer.frames.FrameSink`).

    Each message's ``style_id`` is the frame's own (set by the pipeline), else what the optional
    ``style_id`` callable returns, so subscribers can tell when a style switch took effect.
    Thread-safety: ``write`` from one thread at a time (the pipeline's sink stage).
    """

    def __init__(
        self,
        config: ZmqSinkConfig | None = None,
        *,
        style_id: Callable[[], str | None] | None = None,
    ) -> None:
        self.config = config or ZmqSinkConfig()
        self._style_id = style_id
        self._context = zmq.Context()  # own context: the CURVE authenticator is per context
        self._authenticator = None
        self._socket = self._context.socket(zmq.PUB)
        self._lock = threading.Lock()
        self.frames_sent = 0
        self.bytes_sent = 0
        self.last_latency_s: float | None = None
        try:
            self._socket.setsockopt(zmq.LINGER, 0)
            self._socket.setsockopt(zmq.SNDHWM, self.config.send_hwm)
            if self.config.send_buffer_bytes is not None:
                self._socket.setsockopt(zmq.SNDBUF, self.config.send_buffer_bytes)
            if self.config.curve_keys_dir is not None:
                from streamer.zeromq.curve import configure_curve_server

                self._authenticator = configure_curve_server(
                    self._socket, self._context, self.config.curve_keys_dir
                )
            self.endpoint = bind(
                self._socket, self.config.endpoint, allow_remote=self.config.allow_remote_bind
            )
        except BaseException:
            self._close_sockets()
            raise
        log.info(
            "publishing %s frames on %s%s",
            self.config.encoding,
            self.endpoint,
            " (CURVE)" if self._authenticator else "",
        )

    def publish(
        self, frame: Frame, *, style_id: str | None = None, stream: str | None = None
    ) -> None:
        """Encode and send one frame (never blocks; a full subscriber queue drops it).

        ``stream``: send ``[topic, header, payload]`` with this stream name as topic and
        header field (``stylestream serve``; thread-safe: many streams share one socket)."""
        header, parts = encode_frame(
            frame,
            encoding=self.config.encoding,
            jpeg_quality=self.config.jpeg_quality,
            style_id=style_id,
            stream=stream,
        )
        with self._lock:
            try:
                self._socket.send_multipart(parts, flags=zmq.NOBLOCK, copy=False)
            except zmq.Again:  # PUB does not raise on HWM; kept for other socket types
                return
        self.frames_sent += 1
        self.bytes_sent += sum(len(part) for part in parts)
        self.last_latency_s = header.publish_time - header.capture_time
        if log.isEnabledFor(logging.DEBUG):
            log.debug(
                "published frame %d (%.1f ms after capture)", header.index, 1e3 * header.latency_s
            )

    def write(self, frame: Frame) -> None:
        style_id = frame.style_id
        if style_id is None and self._style_id is not None:
            style_id = self._style_id()
        self.publish(frame, style_id=style_id)

    def _close_sockets(self) -> None:
        self._socket.close(linger=0)
        if self._authenticator is not None:
            self._authenticator.stop()
            self._authenticator = None
        self._context.term()

    def close(self) -> None:
        with self._lock:
            if self._socket.closed:
                return
            self._close_sockets()
        log.info("publisher %s closed after %d frames", self.endpoint, self.frames_sent)
