"""The control endpoint: a ZeroMQ REP socket served in a thread, each request dispatched
through a table of commands to its handler.

:class:`Handlers` pairs each command's request type with the function that carries it out
(:class:`Route`); ``live`` passes its handlers (:func:`~streamer.zeromq.control.targets.live_handlers`),
``serve`` its own (the live ones aimed at one stream, plus add/remove/list-streams). The server
owns the socket, the size limits (``MAX_REQUEST_BYTES`` gets an error reply; far above it
ZeroMQ drops the peer), the bind checks and CURVE; a request never takes the stream down: every
error becomes ``{"ok": false, "error": ...}``.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generic, TypeVar

import zmq

from streamer.zeromq.control.protocol import Json, RequestType, decode_request, lookup
from streamer.zeromq.endpoints import bind

log = logging.getLogger(__name__)

_SOCKET_MAX_BYTES = 1024 * 1024  # beyond this ZeroMQ drops the peer without a reply

R = TypeVar("R")


@dataclass(frozen=True)
class Route(Generic[R]):
    """One command: its request type (the parser) and the handler that carries it out."""

    request_type: RequestType[R]
    handler: Callable[[R], Json]

    @property
    def command(self) -> str:
        return self.request_type.command

    def __call__(self, request: Mapping[str, Any]) -> Json:
        """Parse the decoded ``request`` (ControlRequestError) and carry it out."""
        return self.handler(self.request_type.from_json(request))


class Handlers:
    """The commands a server answers: name -> :class:`Route`, in the given order."""

    def __init__(self, routes: Iterable[Route[Any]]) -> None:
        self.routes: dict[str, Route[Any]] = {}
        for route in routes:
            if route.command in self.routes:
                raise ValueError(f"two handlers for {route.command!r}")
            self.routes[route.command] = route

    @property
    def commands(self) -> tuple[str, ...]:
        return tuple(self.routes)

    def handle(self, request: Mapping[str, Any]) -> Json:
        """Carry out one decoded request (raises :class:`ControlRequestError` to refuse)."""
        return lookup(request, self.routes)(request)


class ControlServer:
    """Serves control requests in a thread (``start()``/``close()``, or ``with``).

    Args:
        handlers: the commands and what they do.
        endpoint: REP bind address (loopback unless ``allow_remote_bind``).
        curve_keys_dir: accept only CURVE clients authorized in this key directory.
    """

    def __init__(
        self,
        handlers: Handlers,
        endpoint: str,
        *,
        allow_remote_bind: bool = False,
        curve_keys_dir: str | Path | None = None,
        poll_s: float = 0.1,
    ) -> None:
        self.handlers = handlers
        self._poll_ms = int(poll_s * 1000)
        self.requests_served = 0
        self._context = zmq.Context()
        self._authenticator = None
        self._socket = self._context.socket(zmq.REP)
        try:
            self._socket.setsockopt(zmq.LINGER, 0)
            # above MAX_REQUEST_BYTES a request gets an error reply; far above, ZeroMQ drops it
            self._socket.setsockopt(zmq.MAXMSGSIZE, _SOCKET_MAX_BYTES)
            if curve_keys_dir is not None:
                from streamer.zeromq.curve import configure_curve_server

                self._authenticator = configure_curve_server(
                    self._socket, self._context, curve_keys_dir
                )
            self.endpoint = bind(self._socket, endpoint, allow_remote=allow_remote_bind)
        except BaseException:
            self._close_socket()
            raise
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="stylestream-control", daemon=True)

    def start(self) -> ControlServer:
        self._thread.start()
        log.info("control endpoint on %s (%s)", self.endpoint, ", ".join(self.handlers.commands))
        return self

    def _serve(self) -> None:
        poller = zmq.Poller()
        poller.register(self._socket, zmq.POLLIN)
        while not self._stop.is_set():
            if not poller.poll(self._poll_ms):
                continue
            try:
                data = self._socket.recv(zmq.NOBLOCK)
            except zmq.Again:
                continue
            reply = self.handle_bytes(data)
            try:
                self._socket.send(json.dumps(reply).encode())
            except zmq.ZMQError as err:  # the client went away; REP is ready again anyway
                log.debug("control reply not sent: %s", err)
            self.requests_served += 1

    def handle_bytes(self, data: bytes) -> Json:
        """Decode, check, carry out and answer one request (never raises)."""
        try:
            return {"ok": True, **self.handlers.handle(decode_request(data))}
        except (ValueError, OSError, RuntimeError, MemoryError) as err:
            log.warning("control request rejected: %s", err)
            return {"ok": False, "error": str(err)}
        except Exception as err:  # a control request must never take the stream down
            log.exception("control request failed")
            return {"ok": False, "error": f"{type(err).__name__}: {err}"}

    def _close_socket(self) -> None:
        self._socket.close(linger=0)
        if self._authenticator is not None:
            self._authenticator.stop()
        self._context.term()

    def close(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)
        if not self._socket.closed:
            self._close_socket()

    def __enter__(self) -> ControlServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()
