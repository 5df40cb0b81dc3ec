"""Change a running stream without restarting it: a ZeroMQ REQ/REP control endpoint.

Requests and replies are single-part UTF-8 JSON objects (never pickle)::

    {"command": "set-style", "styles": ["/abs/a.jpg", "/abs/b.jpg"], "weights": [0.7, 0.3]}
    {"command": "set-alpha", "alpha": 0.6}
    {"command": "get-status"}

    -> {"ok": true, "style_id": "a:0.70+b:0.30", ...}   or   {"ok": false, "error": "..."}

Style paths are read by the SERVER (``stylestream control`` makes them absolute first). The new
style is encoded in the control thread and swapped in atomically: the frame being stylized
finishes with the old style, the next one uses the new one. A bad style file is answered with
an error and the stream carries on with the style it had.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import zmq

from adaattn_video.errors import StylestreamError
from streamer.endpoints import bind, check_endpoint

log = logging.getLogger(__name__)

DEFAULT_CONTROL_ENDPOINT = "tcp://127.0.0.1:5556"
MAX_REQUEST_BYTES = 64 * 1024
COMMANDS = ("set-style", "set-alpha", "get-status")


class ControlError(StylestreamError, ConnectionError):
    """A control request could not be delivered or was answered with an error."""


class _BadRequest(ValueError):
    pass


class ControlServer:
    """Serves control requests for a :class:`~adaattn_video.stylizer.FrameStylizer` in a thread.

    Args:
        stylizer: anything with ``set_style(paths, weights)``, an ``alpha`` property and
            ``style_id``.
        endpoint: REP bind address (loopback unless ``allow_remote_bind``).
        status: returns extra fields for ``get-status`` (fps, latency, drops...), or None.
        curve_keys_dir: accept only CURVE clients authorized in this key directory.
    """

    def __init__(
        self,
        stylizer: Any,
        endpoint: str = DEFAULT_CONTROL_ENDPOINT,
        *,
        status: Callable[[], Mapping[str, Any]] | None = None,
        allow_remote_bind: bool = False,
        curve_keys_dir: str | Path | None = None,
        poll_s: float = 0.1,
    ) -> None:
        self.stylizer = stylizer
        self._status = status
        self._poll_ms = int(poll_s * 1000)
        self.requests_served = 0
        self._context = zmq.Context()
        self._authenticator = None
        self._socket = self._context.socket(zmq.REP)
        try:
            self._socket.setsockopt(zmq.LINGER, 0)
            self._socket.setsockopt(zmq.MAXMSGSIZE, MAX_REQUEST_BYTES)
            if curve_keys_dir is not None:
                from streamer.keys import configure_curve_server

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
        log.info("control endpoint on %s (set-style, set-alpha, get-status)", self.endpoint)
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

    def handle_bytes(self, data: bytes) -> dict[str, Any]:
        """Parse, execute and answer one request (never raises)."""
        try:
            try:
                request = json.loads(data.decode("utf-8"))
            except (UnicodeDecodeError, json.JSONDecodeError) as err:
                raise _BadRequest(f"request is not UTF-8 JSON: {err}") from err
            if not isinstance(request, dict):
                raise _BadRequest(f"request must be a JSON object, got {type(request).__name__}")
            return {"ok": True, **self.handle(request)}
        except (_BadRequest, ValueError, OSError, RuntimeError) as err:
            log.warning("control request rejected: %s", err)
            return {"ok": False, "error": str(err)}
        except Exception as err:  # a control request must never take the stream down
            log.exception("control request failed")
            return {"ok": False, "error": f"{type(err).__name__}: {err}"}

    def handle(self, request: Mapping[str, Any]) -> dict[str, Any]:
        command = request.get("command")
        if command == "set-style":
            styles = request.get("styles")
            if isinstance(styles, str):
                styles = [styles]
            if (
                not isinstance(styles, list)
                or not styles
                or not all(isinstance(s, str) for s in styles)
            ):
                raise _BadRequest(
                    f"set-style needs 'styles': a list of image paths, got {styles!r}"
                )
            weights = request.get("weights")
            if weights is not None and (
                not isinstance(weights, list)
                or not all(isinstance(w, (int, float)) and not isinstance(w, bool) for w in weights)
            ):
                raise _BadRequest(f"'weights' must be a list of numbers, got {weights!r}")
            for path in styles:
                if not Path(path).is_absolute():
                    raise _BadRequest(
                        f"style path {path!r} is relative; the server cannot know your working "
                        "folder: send an absolute path"
                    )
            started = time.perf_counter()
            self.stylizer.set_style(styles, weights)
            return {
                "style_id": self.stylizer.style_id,
                "encode_ms": round(1000 * (time.perf_counter() - started), 1),
            }
        if command == "set-alpha":
            alpha = request.get("alpha")
            if isinstance(alpha, bool) or not isinstance(alpha, (int, float)):
                raise _BadRequest(f"set-alpha needs a number 'alpha' in [0, 1], got {alpha!r}")
            self.stylizer.alpha = alpha
            return {"alpha": self.stylizer.alpha}
        if command == "get-status":
            status = {"style_id": self.stylizer.style_id, "alpha": self.stylizer.alpha}
            if self._status is not None:
                status.update(self._status())
            return status
        raise _BadRequest(f"unknown command {command!r}; expected one of {', '.join(COMMANDS)}")

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


def send_command(
    endpoint: str,
    request: Mapping[str, Any],
    *,
    timeout_s: float = 10.0,
    curve_keys_dir: str | Path | None = None,
) -> dict[str, Any]:
    """Send one request and return the reply; :class:`ControlError` on no reply or an error.

    A fresh REQ socket per request: a lost reply never leaves a socket stuck in REQ's
    send/receive lockstep.
    """
    check_endpoint(endpoint)
    context = zmq.Context()
    socket = context.socket(zmq.REQ)
    try:
        socket.setsockopt(zmq.LINGER, 0)
        socket.setsockopt(zmq.RCVTIMEO, int(timeout_s * 1000))
        socket.setsockopt(zmq.SNDTIMEO, int(timeout_s * 1000))
        if curve_keys_dir is not None:
            from streamer.keys import configure_curve_client

            configure_curve_client(socket, curve_keys_dir)
        socket.connect(endpoint)
        try:
            socket.send(json.dumps(dict(request)).encode())
            reply_bytes = socket.recv()
        except zmq.Again as err:
            raise ControlError(
                f"no reply from {endpoint} within {timeout_s:.1f} s: is `stylestream live` "
                "running with this --control endpoint?"
            ) from err
    finally:
        socket.close(linger=0)
        context.term()
    try:
        reply = json.loads(reply_bytes.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ControlError(f"{endpoint} answered with something that is not JSON") from err
    if not isinstance(reply, dict):
        raise ControlError(f"{endpoint} answered with {type(reply).__name__}, not an object")
    if not reply.get("ok"):
        raise ControlError(f"{endpoint} refused: {reply.get('error', 'no reason given')}")
    return reply


def set_style_request(
    styles: Sequence[str | Path], weights: Sequence[float] | None = None
) -> dict[str, Any]:
    """A ``set-style`` request with the paths made absolute (the server has its own cwd)."""
    request: dict[str, Any] = {
        "command": "set-style",
        "styles": [str(Path(s).expanduser().resolve()) for s in styles],
    }
    if weights is not None:
        request["weights"] = [float(w) for w in weights]
    return request
