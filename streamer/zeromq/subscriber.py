"""Python client for a stylestream publisher: iterate frames with their headers.

    from streamer.zeromq.subscriber import Subscriber

    with Subscriber("tcp://127.0.0.1:5555", latest_only=True) as sub:
        for frame in sub:                      # ReceivedFrame(header, image, ...)
            show(frame.image)                  # (H, W, 3) uint8 RGB
            print(frame.header.index, frame.header.style_id, frame.latency_s)

``latest_only`` skips frames the client is too slow for and always returns the newest one that
has arrived. ZeroMQ's ``CONFLATE`` option cannot do this (it breaks multipart messages), so the
client drains its socket after each wait and decodes only the last complete message.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import zmq

from adaattn_video.errors import StylestreamError
from streamer.zeromq.endpoints import check_endpoint
from streamer.zeromq.wire import (
    FrameHeader,
    WireFormatError,
    check_stream_name,
    decode_frame,
    split_topic,
)

log = logging.getLogger(__name__)


class _Default:
    """Type of :data:`DEFAULT`: "use the configured receive timeout"."""


DEFAULT = _Default()


class ReceiveTimeout(StylestreamError, TimeoutError):
    """No frame arrived within the receive timeout."""


@dataclass(frozen=True)
class ReceivedFrame:
    """One frame as received.

    Attributes:
        header: the validated wire header.
        image: (H, W, 3) uint8 RGB (read-only for rgb24 payloads: it views the message).
        receive_time: Unix time the message was taken from the socket.
        skipped: older messages skipped to get to this one (latest-only mode), else 0.
        payload: the message's payload as received (JPEG bytes or raw rgb24), e.g. to forward
            a JPEG without re-encoding it.
    """

    header: FrameHeader
    image: np.ndarray
    receive_time: float
    skipped: int = 0
    payload: bytes | memoryview = b""

    @property
    def latency_s(self) -> float:
        """Capture to receive, in seconds (meaningful when both clocks are this machine's)."""
        return self.receive_time - self.header.capture_time


def _topic(parts: list[zmq.Frame]) -> bytes | None:
    """The topic of a serve message ``[topic, header, payload]``; None for live's two parts."""
    return bytes(parts[0].buffer) if len(parts) == 3 else None


@dataclass(frozen=True)
class SubscriberConfig:
    """How to receive.

    Attributes:
        endpoint: the publisher's endpoint (``tcp://HOST:PORT``).
        latest_only: return only the newest frame available, skipping older ones (per stream
            of a ``serve`` publisher: the newest frame of each stream, in arrival order).
        receive_timeout_s: how long ``receive``/iteration waits for a frame before raising
            :class:`ReceiveTimeout`; None waits forever.
        receive_hwm: messages ZeroMQ queues for this client before dropping new ones.
        curve_keys_dir: directory with ``server.key`` and ``client.key_secret`` for an
            encrypted publisher (see :mod:`streamer.zeromq.curve`).
        stream: receive only this stream of a ``stylestream serve`` publisher (its ZeroMQ
            topic; names are compared exactly, although ZeroMQ filters by prefix); None: every
            frame (all streams of a ``serve``, or the one stream of a ``live``).
    """

    endpoint: str
    latest_only: bool = False
    receive_timeout_s: float | None = 10.0
    receive_hwm: int = 32
    curve_keys_dir: Path | None = None
    stream: str | None = None

    def __post_init__(self) -> None:
        check_endpoint(self.endpoint)
        if self.stream is not None:
            check_stream_name(self.stream)
        if self.receive_timeout_s is not None and self.receive_timeout_s <= 0:
            raise ValueError(f"receive_timeout_s must be > 0 or None, got {self.receive_timeout_s}")
        if self.receive_hwm < 1:
            raise ValueError(f"receive_hwm must be >= 1, got {self.receive_hwm}")


class Subscriber:
    """A SUB socket connected to a publisher; iterate it or call :meth:`receive`."""

    def __init__(self, config: SubscriberConfig | str, **options: object) -> None:
        if isinstance(config, str):
            config = SubscriberConfig(config, **options)  # type: ignore[arg-type]
        elif options:
            raise TypeError("give either a SubscriberConfig or an endpoint with options")
        self.config = config
        self.frames_received = 0
        self.frames_skipped = 0
        self.frames_rejected = 0  # malformed messages skipped by iteration
        self._context = zmq.Context()
        self._socket = self._context.socket(zmq.SUB)
        try:
            self._socket.setsockopt(zmq.LINGER, 0)
            self._socket.setsockopt(zmq.RCVHWM, config.receive_hwm)
            if config.curve_keys_dir is not None:
                from streamer.zeromq.curve import configure_curve_client

                configure_curve_client(self._socket, config.curve_keys_dir)
            topic = b"" if config.stream is None else config.stream.encode()
            self._socket.setsockopt(zmq.SUBSCRIBE, topic)
            self._socket.connect(config.endpoint)
        except BaseException:
            self.close()
            raise
        self._poller = zmq.Poller()
        self._poller.register(self._socket, zmq.POLLIN)
        self._pending: deque[tuple[list[zmq.Frame], int]] = deque()

    def _wait(self, timeout_s: float | None) -> bool:
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        while True:
            # Wake at least every 0.5 s so a KeyboardInterrupt is handled promptly.
            slice_s = 0.5 if deadline is None else min(0.5, max(0.0, deadline - time.monotonic()))
            if self._poller.poll(int(slice_s * 1000)):
                return True
            if deadline is not None and time.monotonic() >= deadline:
                return False

    def receive_parts(
        self, timeout_s: float | _Default | None = DEFAULT
    ) -> tuple[list[zmq.Frame], int]:
        """The next raw message (or the newest, in latest-only mode) and how many were skipped.

        ``timeout_s``: seconds to wait, None to wait forever; by default the config's.
        """
        if self._pending:  # newest messages of other streams from the last drain
            return self._pending.popleft()
        timeout = self.config.receive_timeout_s if isinstance(timeout_s, _Default) else timeout_s
        if not self._wait(timeout):
            raise ReceiveTimeout(
                f"no frame from {self.config.endpoint} within {timeout:.1f} s: is the publisher "
                "running and reachable"
                + (", and do the CURVE keys match?" if self.config.curve_keys_dir else "?")
            )
        parts = self._socket.recv_multipart(copy=False)
        if not self.config.latest_only:
            return parts, 0
        # Drain what is queued, keeping the newest message PER STREAM (a serve's topic; a
        # live publisher has one stream: its newest frame only). Taking only the newest of
        # all would show one stream of a serve and skip the others.
        newest: dict[bytes | None, tuple[list[zmq.Frame], int]] = {_topic(parts): (parts, 0)}
        while True:
            try:
                newer = self._socket.recv_multipart(flags=zmq.NOBLOCK, copy=False)
            except zmq.Again:
                break
            key = _topic(newer)
            _, skipped = newest.pop(key, (None, -1))
            newest[key] = (newer, skipped + 1)  # re-inserted: ordered by newest arrival
        self._pending.extend(newest.values())
        return self._pending.popleft()

    def receive(self, timeout_s: float | _Default | None = DEFAULT) -> ReceivedFrame:
        """The next frame, decoded and validated (:class:`~streamer.zeromq.wire.WireFormatError`)."""
        while True:
            parts, skipped = self.receive_parts(timeout_s)
            received = time.time()
            topic, buffers = split_topic([part.buffer for part in parts])
            if self.config.stream is None or topic == self.config.stream:
                break  # else a longer name with our prefix (ZeroMQ matches prefixes)
        header, image = decode_frame(buffers)
        if topic is not None and header.stream != topic:
            raise WireFormatError(f"topic {topic!r} but header stream {header.stream!r}")
        self.frames_received += 1
        self.frames_skipped += skipped
        return ReceivedFrame(
            header=header, image=image, receive_time=received, skipped=skipped, payload=buffers[1]
        )

    def __iter__(self) -> Iterator[ReceivedFrame]:
        """Frames until the socket is closed; a malformed message (not a stylestream frame,
        a forged size, a damaged JPEG) is skipped with a warning and counted in
        ``frames_rejected`` instead of ending the loop (``receive`` raises it instead)."""
        while not self._socket.closed:
            try:
                yield self.receive()
            except WireFormatError as err:
                self.frames_rejected += 1
                log.warning("skipped a malformed message from %s: %s", self.config.endpoint, err)

    def close(self) -> None:
        if not self._socket.closed:
            self._socket.close(linger=0)
        self._context.term()

    def __enter__(self) -> Subscriber:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
