"""Change a running stream without restarting it: a ZeroMQ REQ/REP control endpoint.

Requests and replies are single-part UTF-8 JSON objects (never pickle)::

    {"command": "set-style", "styles": ["/abs/a.jpg", "/abs/b.jpg"], "weights": [0.7, 0.3]}
    {"command": "set-alpha", "alpha": 0.6}
    {"command": "set-regions", "regions": [{"style": "/abs/a.jpg", "key": "green"},
                                           {"style": "/abs/b.jpg", "mask": "/abs/m.png"}],
     "uncovered": "style"}
    {"command": "clear-regions"}
    {"command": "get-status"}

    -> {"ok": true, "style_id": "a:0.70+b:0.30", ...}   or   {"ok": false, "error": "..."}

Style paths are read by the SERVER (``stylestream control`` makes them absolute first). The new
style is encoded in the control thread and swapped in atomically: the frame being stylized
finishes with the old style, the next one uses the new one. A bad style file is answered with
an error and the stream carries on with the style it had.

``set-regions`` replaces every region at once (the keys of ``--region``; still masks and chroma
keys only: a live source drops frames, so a mask sequence would fall out of step); the region
styles are encoded and the masks read in the control thread too, then swapped in whole
(:class:`~streamer.regions.switch.RegionSwitch`). ``clear-regions`` goes back to the plain style.
``get-status`` reports the current regions.

Limits (a request beyond them is refused with a reason, the stream unchanged): at most
``MAX_REQUEST_BYTES`` (64 KiB) per request and ``MAX_STYLES_PER_REQUEST`` (16) styles (or
regions); weights
and alpha must be finite (JSON ``NaN``/``Infinity`` and overflowing numbers are refused: they
would turn every frame black); styles whose encoding would not fit in memory are refused
(:mod:`adaattn_video.resources`). :func:`parse_request` raises only
:class:`ControlRequestError`, whatever bytes arrive.
"""

from __future__ import annotations

import json
import logging
import math
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import zmq

from adaattn_video.errors import StylestreamError
from streamer.zeromq.endpoints import bind, check_endpoint

if TYPE_CHECKING:
    from streamer.regions.specs import RegionPlan

log = logging.getLogger(__name__)

DEFAULT_CONTROL_ENDPOINT = "tcp://127.0.0.1:5556"
MAX_REQUEST_BYTES = 64 * 1024  # a request is ~100 bytes per style path; larger ones are refused
MAX_STYLES_PER_REQUEST = 16  # each style is read and encoded before the switch
MAX_PATH_CHARS = 4096
_SOCKET_MAX_BYTES = 1024 * 1024  # beyond this ZeroMQ drops the peer without a reply
COMMANDS = ("set-style", "set-alpha", "set-regions", "clear-regions", "get-status")


class ControlError(StylestreamError, ConnectionError):
    """A control request could not be delivered or was answered with an error."""


class ControlRequestError(StylestreamError, ValueError):
    """A control request that is malformed or asks for something that cannot be done (the
    reply's ``error``); the stream is unchanged."""


@dataclass(frozen=True)
class ControlRequest:
    """One parsed, checked request.

    Attributes:
        command: one of :data:`COMMANDS`.
        styles: absolute style image paths (``set-style``; 1 to ``MAX_STYLES_PER_REQUEST``).
        weights: one finite, non-negative weight per style with a positive sum, or None.
        alpha: finite content strength in [0, 1] (``set-alpha``).
        plan: the regions (absolute paths, still masks or chroma keys) and what uncovered
            positions get (``set-regions``).
    """

    command: str
    styles: tuple[str, ...] = ()
    weights: tuple[float, ...] | None = None
    alpha: float | None = None
    plan: RegionPlan | None = None


def _refuse_constant(name: str) -> Any:
    raise ControlRequestError(f"request contains {name}: only finite numbers are accepted")


def _finite_number(value: Any, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ControlRequestError(f"{what} must be a number, got {_short(value)}")
    try:
        number = float(value)
    except OverflowError as err:  # an integer too large for a float
        raise ControlRequestError(f"{what} must be a finite number, got {_short(value)}") from err
    if not math.isfinite(number):
        raise ControlRequestError(f"{what} must be a finite number, got {number}")
    return number


def _short(value: Any, limit: int = 80) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def decode_request(data: bytes | str | Mapping[str, Any]) -> Mapping[str, Any]:
    """One request's bytes -> its JSON object: the size limit, UTF-8 JSON, NaN/Infinity
    refused, an object. Every command (also ``serve``'s) is decoded here.

    Raises:
        ControlRequestError: and nothing else, whatever ``data`` holds.
    """
    if isinstance(data, (bytes, bytearray, memoryview, str)):
        raw = data.encode("utf-8", "surrogatepass") if isinstance(data, str) else bytes(data)
        if len(raw) > MAX_REQUEST_BYTES:
            raise ControlRequestError(
                f"request of {len(raw)} bytes is larger than the {MAX_REQUEST_BYTES} byte limit"
            )
        try:
            request = json.loads(raw.decode("utf-8"), parse_constant=_refuse_constant)
        except ControlRequestError:  # NaN / Infinity
            raise
        except (ValueError, RecursionError) as err:  # bad UTF-8/JSON, 4300+ digit integers
            raise ControlRequestError(f"request is not UTF-8 JSON: {_short(str(err))}") from err
    else:
        request = data
    if not isinstance(request, Mapping):
        raise ControlRequestError(f"request must be a JSON object, got {type(request).__name__}")
    return request


def parse_request(data: bytes | str | Mapping[str, Any]) -> ControlRequest:
    """One request (UTF-8 JSON bytes, or an already decoded object) -> a checked
    :class:`ControlRequest`.

    Raises:
        ControlRequestError: and nothing else, whatever ``data`` holds: not UTF-8 JSON, larger
            than ``MAX_REQUEST_BYTES``, not an object, an unknown command, more than
            ``MAX_STYLES_PER_REQUEST`` styles, a relative path, a NaN/infinite/negative weight,
            an alpha outside [0, 1]...
    """
    request = decode_request(data)
    command = request.get("command")
    if command == "set-style":
        return ControlRequest(command, *_parse_styles(request))
    if command == "set-alpha":
        alpha = request.get("alpha")
        if isinstance(alpha, bool) or not isinstance(alpha, (int, float)):
            raise ControlRequestError(
                f"set-alpha needs a number 'alpha' in [0, 1], got {_short(alpha)}"
            )
        alpha = _finite_number(alpha, "alpha")
        if not 0.0 <= alpha <= 1.0:
            raise ControlRequestError(f"alpha must be in [0, 1], got {alpha:g}")
        return ControlRequest(command, alpha=alpha)
    if command == "set-regions":
        return ControlRequest(command, plan=_parse_regions(request))
    if command in ("get-status", "clear-regions"):
        return ControlRequest(command)
    raise ControlRequestError(
        f"unknown command {_short(command)}; expected one of {', '.join(COMMANDS)}"
    )


def _check_path(path: str, what: str) -> None:
    if not path or len(path) > MAX_PATH_CHARS or "\x00" in path:
        raise ControlRequestError(f"{what} {_short(path)} is not a usable file name")
    if not Path(path).is_absolute():
        raise ControlRequestError(
            f"{what} {_short(path)} is relative; the server cannot know your working "
            "folder: send an absolute path"
        )


def _parse_regions(request: Mapping[str, Any]) -> RegionPlan:
    """``regions`` (a list of ``--region`` mappings or strings) and ``uncovered`` -> a plan
    (no file is read here: that happens in :meth:`RegionSwitch.apply`)."""
    from streamer.regions.specs import RegionPlan, parse_regions, refuse_sequences

    raw = request.get("regions")
    if not isinstance(raw, list) or not raw:
        raise ControlRequestError(
            "set-regions needs 'regions': a list of regions such as {'style': '/abs/a.jpg', "
            f"'key': 'green'}} (clear-regions removes them), got {_short(raw)}"
        )
    if len(raw) > MAX_STYLES_PER_REQUEST:
        raise ControlRequestError(
            f"set-regions got {len(raw)} regions (one style each); at most "
            f"{MAX_STYLES_PER_REQUEST} per request"
        )
    uncovered = request.get("uncovered")
    try:
        specs = parse_regions(raw)
        for spec in specs:
            for path in spec.paths:
                _check_path(path, "region file")
        refuse_sequences(specs, "a running stream")
        return RegionPlan(specs, "style" if uncovered is None else uncovered)
    except ControlRequestError:
        raise
    except (ValueError, TypeError, OSError) as err:  # RegionError, MaskError, odd names
        raise ControlRequestError(str(err) or type(err).__name__) from err


def _parse_styles(request: Mapping[str, Any]) -> tuple[tuple[str, ...], tuple[float, ...] | None]:
    styles = request.get("styles")
    if isinstance(styles, str):
        styles = [styles]
    if not isinstance(styles, list) or not styles or not all(isinstance(s, str) for s in styles):
        raise ControlRequestError(
            f"set-style needs 'styles': a list of image paths, got {_short(styles)}"
        )
    if len(styles) > MAX_STYLES_PER_REQUEST:
        raise ControlRequestError(
            f"set-style got {len(styles)} styles; at most {MAX_STYLES_PER_REQUEST} per request"
        )
    for path in styles:
        _check_path(path, "style path")
    weights = request.get("weights")
    if weights is None:
        return tuple(styles), None
    if not isinstance(weights, list):
        raise ControlRequestError(f"'weights' must be a list of numbers, got {_short(weights)}")
    numbers = tuple(_finite_number(w, "each weight") for w in weights)
    if len(numbers) != len(styles):
        raise ControlRequestError(
            f"expected {len(styles)} style weights (one per style), got {len(numbers)}"
        )
    if any(w < 0 for w in numbers) or not sum(numbers) > 0:
        raise ControlRequestError(
            f"style weights must be >= 0 with a positive sum, got {list(numbers)}"
        )
    return tuple(styles), numbers


def execute_regions(stylizer: Any, request: ControlRequest) -> dict[str, Any]:
    """Apply a checked ``set-regions`` / ``clear-regions`` to ``stylizer`` (a
    :class:`~streamer.regions.switch.RegionSwitch`: live's and every serve stream's); the styles are
    encoded and the masks read here, in the caller's (control) thread. A bad file raises and
    leaves the regions as they were."""
    from streamer.regions.switch import RegionSwitch

    if not isinstance(stylizer, RegionSwitch):
        raise ControlRequestError("this stream's stylizer cannot take regions")
    started = time.perf_counter()
    if request.command == "set-regions":
        assert request.plan is not None
        stylizer.apply(request.plan)
    else:
        stylizer.clear()
    return {
        "style_id": stylizer.style_id,
        **stylizer.regions_status(),
        "encode_ms": round(1000 * (time.perf_counter() - started), 1),
    }


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
        log.info("control endpoint on %s (%s)", self.endpoint, ", ".join(COMMANDS))
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
            return {"ok": True, **self.handle(decode_request(data))}
        except (ValueError, OSError, RuntimeError, MemoryError) as err:
            log.warning("control request rejected: %s", err)
            return {"ok": False, "error": str(err)}
        except Exception as err:  # a control request must never take the stream down
            log.exception("control request failed")
            return {"ok": False, "error": f"{type(err).__name__}: {err}"}

    def handle(self, request: Mapping[str, Any]) -> dict[str, Any]:
        """Check and execute a decoded request (raises :class:`ControlRequestError`)."""
        return self.execute(parse_request(request))

    def execute(self, request: ControlRequest) -> dict[str, Any]:
        """Apply a checked request. ``set-style`` reads and encodes the styles here, in the
        control thread; the stylizer swaps the finished style in as one reference, so the
        stylizing thread never waits and never sees half a switch."""
        if request.command == "set-style":
            self._check_style_memory(request.styles)
            started = time.perf_counter()
            self.stylizer.set_style(list(request.styles), request.weights)
            return {
                "style_id": self.stylizer.style_id,
                "encode_ms": round(1000 * (time.perf_counter() - started), 1),
            }
        if request.command == "set-alpha":
            self.stylizer.alpha = request.alpha
            return {"alpha": self.stylizer.alpha}
        if request.command in ("set-regions", "clear-regions"):
            if request.plan is not None:
                self._check_style_memory([str(spec.style) for spec in request.plan.regions])
            return execute_regions(self.stylizer, request)
        from streamer.regions.switch import RegionSwitch

        status = {"style_id": self.stylizer.style_id, "alpha": self.stylizer.alpha}
        if isinstance(self.stylizer, RegionSwitch):
            status.update(self.stylizer.regions_status())
        if self._status is not None:
            status.update(self._status())
        return status

    def _check_style_memory(self, styles: Sequence[str]) -> None:
        """Refuse styles whose encoding would not fit in memory (the model's stylizers; a
        stand-in without a model has nothing to check)."""
        from adaattn_video.resources import check_stylize_memory
        from adaattn_video.stylizer import FrameStylizer
        from streamer.regions.switch import RegionSwitch

        stylizer = self.stylizer.plain if isinstance(self.stylizer, RegionSwitch) else self.stylizer
        if not isinstance(stylizer, FrameStylizer):
            return
        check_stylize_memory(
            stylizer.model.config,
            None,
            precision=stylizer.config.precision,
            device=str(stylizer.device),
            styles=styles,
            style_size=stylizer.config.style_size,
        )

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
            from streamer.zeromq.curve import configure_curve_client

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


def set_regions_request(specs: Sequence[Any], uncovered: str | None = None) -> dict[str, Any]:
    """A ``set-regions`` request from :class:`~streamer.regions.specs.RegionSpec` s, their paths
    made absolute (the server has its own cwd)."""
    request: dict[str, Any] = {
        "command": "set-regions",
        "regions": [spec.absolute().as_dict() for spec in specs],
    }
    if uncovered is not None:
        request["uncovered"] = uncovered
    return request
