"""The control requests: one frozen dataclass per command, checked at construction, and the
table of commands (name -> request type) the server dispatches through.

A request travels as one UTF-8 JSON object (never pickle), ``{"command": NAME, ...}``::

    {"command": "set-style", "styles": ["/abs/a.jpg", "/abs/b.jpg"], "weights": [0.7, 0.3]}
    {"command": "set-alpha", "alpha": 0.6}
    {"command": "set-regions", "regions": [{"style": "/abs/a.jpg", "key": "green"},
                                           {"style": "/abs/b.jpg", "mask": "/abs/m.png"}],
     "uncovered": "style"}
    {"command": "clear-regions"}
    {"command": "get-status"}

Each type reads its JSON object (``from_json``) and writes it back (``to_json``);
``T.from_json(r.to_json()) == r`` for every request ``r``. A multi-stream server (``serve``)
aims a request at one stream with a ``"stream"`` key (:class:`ForStream`).

Limits (a request beyond them is refused with a reason, the stream unchanged): at most
``MAX_REQUEST_BYTES`` (64 KiB) per request and ``MAX_STYLES_PER_REQUEST`` (16) styles (or
regions); style and region paths must be absolute (the server has its own working folder),
at most ``MAX_PATH_CHARS`` long, without NUL; weights and alpha must be finite (JSON
``NaN``/``Infinity`` and overflowing numbers are refused: they would turn every frame black).
Parsing raises only :class:`ControlRequestError`, whatever bytes arrive.
"""

from __future__ import annotations

import json
import math
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any, ClassVar, Generic, NoReturn, Protocol, TypeVar, cast, overload

from configkit.errors import StylestreamError
from streamer.regions.specs import RegionPlan, RegionSpec, parse_regions, refuse_sequences

DEFAULT_CONTROL_ENDPOINT = "tcp://127.0.0.1:5556"
MAX_REQUEST_BYTES = 64 * 1024  # a request is ~100 bytes per style path; larger ones are refused
MAX_STYLES_PER_REQUEST = 16  # each style is read and encoded before the switch
MAX_PATH_CHARS = 4096

Json = dict[str, Any]  # one JSON object (a request or a reply)


class ControlError(StylestreamError, ConnectionError):
    """A control request could not be delivered or was answered with an error."""


class ControlRequestError(StylestreamError, ValueError):
    """A control request that is malformed or asks for something that cannot be done (the
    reply's ``error``); the stream is unchanged."""


# -- checks shared by the request types --------------------------------------------------------
def _short(value: object, limit: int = 80) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _finite_number(value: object, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ControlRequestError(f"{what} must be a number, got {_short(value)}")
    try:
        number = float(value)
    except OverflowError as err:  # an integer too large for a float
        raise ControlRequestError(f"{what} must be a finite number, got {_short(value)}") from err
    if not math.isfinite(number):
        raise ControlRequestError(f"{what} must be a finite number, got {number}")
    return number


def _check_path(path: str, what: str) -> None:
    """An absolute, usable file name (the server reads it; it cannot know the client's cwd)."""
    if not path or len(path) > MAX_PATH_CHARS or "\x00" in path:
        raise ControlRequestError(f"{what} {_short(path)} is not a usable file name")
    if not Path(path).is_absolute():
        raise ControlRequestError(
            f"{what} {_short(path)} is relative; the server cannot know your working "
            "folder: send an absolute path"
        )


def _styles(value: object) -> tuple[str, ...]:
    """``styles``: one path or a non-empty list of paths."""
    styles = [value] if isinstance(value, str) else value
    if (
        not isinstance(styles, (list, tuple))
        or not styles
        or not all(isinstance(s, str) for s in styles)
    ):
        raise ControlRequestError(
            f"set-style needs 'styles': a list of image paths, got {_short(value)}"
        )
    return tuple(styles)


def _weights(value: object, count: int) -> tuple[float, ...] | None:
    """One finite, non-negative weight per style with a positive sum, or None."""
    if value is None:
        return None
    if not isinstance(value, (list, tuple)):
        raise ControlRequestError(f"'weights' must be a list of numbers, got {_short(value)}")
    numbers = tuple(_finite_number(w, "each weight") for w in value)
    if len(numbers) != count:
        raise ControlRequestError(
            f"expected {count} style weights (one per style), got {len(numbers)}"
        )
    if any(w < 0 for w in numbers) or not sum(numbers) > 0:
        raise ControlRequestError(
            f"style weights must be >= 0 with a positive sum, got {list(numbers)}"
        )
    return numbers


def _alpha(value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ControlRequestError(
            f"set-alpha needs a number 'alpha' in [0, 1], got {_short(value)}"
        )
    alpha = _finite_number(value, "alpha")
    if not 0.0 <= alpha <= 1.0:
        raise ControlRequestError(f"alpha must be in [0, 1], got {alpha:g}")
    return alpha


# -- the requests --------------------------------------------------------------------------------
class ControlRequest(ABC):
    """Base of the request dataclasses: ``command`` names the type on the wire; ``from_json``
    reads the JSON object (raising only :class:`ControlRequestError`), ``to_json`` writes it."""

    command: ClassVar[str]

    @classmethod
    @abstractmethod
    def from_json(cls, request: Mapping[str, Any]) -> ControlRequest:
        """The checked request of ``request`` (a decoded JSON object)."""

    def to_json(self) -> Json:
        """The request's JSON object (what :func:`send_request` sends)."""
        return {"command": self.command}


R = TypeVar("R", bound=ControlRequest)
R_co = TypeVar("R_co", covariant=True)


class RequestType(Protocol[R_co]):
    """An entry of a command table: the command's name and its parser (a request class, or
    :class:`ForStream.of` a request class)."""

    @property
    def command(self) -> str: ...

    def from_json(self, request: Mapping[str, Any], /) -> R_co: ...


@dataclass(frozen=True)
class SetStyle(ControlRequest):
    """Switch to a style or a weighted mix of styles (encoded in the control thread, swapped
    in whole).

    Attributes:
        styles: 1 to ``MAX_STYLES_PER_REQUEST`` absolute style image paths.
        weights: one finite, non-negative weight per style with a positive sum, or None
            (equal weights).
    """

    command: ClassVar[str] = "set-style"
    styles: tuple[str, ...]
    weights: tuple[float, ...] | None = None

    def __post_init__(self) -> None:
        styles = _styles(self.styles)
        if len(styles) > MAX_STYLES_PER_REQUEST:
            raise ControlRequestError(
                f"set-style got {len(styles)} styles; at most {MAX_STYLES_PER_REQUEST} per request"
            )
        for path in styles:
            _check_path(path, "style path")
        object.__setattr__(self, "styles", styles)
        object.__setattr__(self, "weights", _weights(self.weights, len(styles)))

    @classmethod
    def from_paths(
        cls, styles: Sequence[str | Path], weights: Sequence[float] | None = None
    ) -> SetStyle:
        """Paths as a user types them, made absolute here (the server has its own cwd)."""
        absolute = tuple(str(Path(s).expanduser().resolve()) for s in styles)
        return cls(absolute, None if weights is None else tuple(float(w) for w in weights))

    @classmethod
    def from_json(cls, request: Mapping[str, Any]) -> SetStyle:
        # the weights are checked in __post_init__, after the styles (count, paths)
        return cls(_styles(request.get("styles")), request.get("weights"))

    def to_json(self) -> Json:
        body: Json = {"command": self.command, "styles": list(self.styles)}
        if self.weights is not None:
            body["weights"] = list(self.weights)
        return body


@dataclass(frozen=True)
class SetAlpha(ControlRequest):
    """Set the content strength: a finite ``alpha`` in [0, 1]."""

    command: ClassVar[str] = "set-alpha"
    alpha: float

    def __post_init__(self) -> None:
        object.__setattr__(self, "alpha", _alpha(self.alpha))

    @classmethod
    def from_json(cls, request: Mapping[str, Any]) -> SetAlpha:
        return cls(_alpha(request.get("alpha")))

    def to_json(self) -> Json:
        return {"command": self.command, "alpha": self.alpha}


@dataclass(frozen=True)
class SetRegions(ControlRequest):
    """Replace every region at once (the keys of ``--region``).

    Still masks and chroma keys only (a live source drops frames, so a mask sequence would
    fall out of step), 1 to ``MAX_STYLES_PER_REQUEST`` regions, absolute paths. No file is read
    here: the target reads the masks and encodes the styles when it applies the plan.
    """

    command: ClassVar[str] = "set-regions"
    plan: RegionPlan

    def __post_init__(self) -> None:
        _check_region_count(len(self.plan.regions))
        try:
            for spec in self.plan.regions:
                for path in spec.paths:
                    _check_path(path, "region file")
            refuse_sequences(self.plan.regions, "a running stream")
        except ControlRequestError:
            raise
        except ValueError as err:  # MaskError
            raise ControlRequestError(str(err)) from err

    @classmethod
    def from_specs(cls, specs: Sequence[RegionSpec], uncovered: str | None = None) -> SetRegions:
        """Regions as a user gives them, their paths made absolute here."""
        return cls(_plan([spec.absolute() for spec in specs], uncovered))

    @classmethod
    def from_json(cls, request: Mapping[str, Any]) -> SetRegions:
        """``regions`` (a list of ``--region`` mappings or strings) and ``uncovered``."""
        raw = request.get("regions")
        if not isinstance(raw, list) or not raw:
            raise ControlRequestError(
                "set-regions needs 'regions': a list of regions such as {'style': '/abs/a.jpg', "
                f"'key': 'green'}} (clear-regions removes them), got {_short(raw)}"
            )
        _check_region_count(len(raw))
        return cls(_plan(raw, request.get("uncovered")))

    def to_json(self) -> Json:
        body: Json = {
            "command": self.command,
            "regions": [spec.as_dict() for spec in self.plan.regions],
        }
        if self.plan.uncovered != "style":  # the default is left out, as a user would
            body["uncovered"] = self.plan.uncovered
        return body


def _check_region_count(count: int) -> None:
    if count > MAX_STYLES_PER_REQUEST:
        raise ControlRequestError(
            f"set-regions got {count} regions (one style each); at most "
            f"{MAX_STYLES_PER_REQUEST} per request"
        )


def _plan(regions: Sequence[Any], uncovered: Any) -> RegionPlan:
    try:
        specs = parse_regions(list(regions))
        refuse_sequences(specs, "a running stream")
        return RegionPlan(specs, "style" if uncovered is None else uncovered)
    except (ValueError, TypeError, OSError) as err:  # RegionError, MaskError, odd names
        raise ControlRequestError(str(err) or type(err).__name__) from err


@dataclass(frozen=True)
class ClearRegions(ControlRequest):
    """Back to the plain style (from the next batch on)."""

    command: ClassVar[str] = "clear-regions"

    @classmethod
    def from_json(cls, request: Mapping[str, Any]) -> ClearRegions:
        return cls()


@dataclass(frozen=True)
class GetStatus(ControlRequest):
    """The current style, alpha, regions and the stream's numbers."""

    command: ClassVar[str] = "get-status"

    @classmethod
    def from_json(cls, request: Mapping[str, Any]) -> GetStatus:
        return cls()


@dataclass(frozen=True)
class ForStream(Generic[R]):
    """``request`` aimed at one stream of a multi-stream server (``serve``): its JSON object
    with ``"stream": NAME``. ``stream`` None: not named (the server refuses it and lists its
    streams)."""

    request: R
    stream: str | None = None

    @property
    def command(self) -> str:
        return self.request.command

    def to_json(self) -> Json:
        body = self.request.to_json()
        if self.stream is not None:
            body["stream"] = self.stream
        return body

    @staticmethod
    def of(request_type: type[R]) -> StreamCommand[R]:
        """The table entry that parses ``request_type`` with its ``"stream"``."""
        return StreamCommand(request_type)


@dataclass(frozen=True)
class StreamCommand(Generic[R]):
    """A :class:`RequestType` for :class:`ForStream` requests of one request class."""

    request_type: type[R]

    @property
    def command(self) -> str:
        return self.request_type.command

    def from_json(self, request: Mapping[str, Any]) -> ForStream[R]:
        parsed = cast(R, self.request_type.from_json(request))  # each class parses into itself
        return ForStream(parsed, stream_name(request))


def stream_name(request: Mapping[str, Any]) -> str | None:
    """The request's ``stream`` (None when it names none)."""
    name = request.get("stream")
    if name is not None and not isinstance(name, str):
        raise ControlRequestError(f"'stream' must be a stream name, got {_short(name)}")
    return name


# -- the table and the parser ---------------------------------------------------------------------
T = TypeVar("T")


def command_table(*entries: RequestType[T]) -> Mapping[str, RequestType[T]]:
    """name -> request type, in the given order (read-only)."""
    table = {entry.command: entry for entry in entries}
    if len(table) != len(entries):
        raise ValueError(f"two entries for one command in {[e.command for e in entries]}")
    return MappingProxyType(table)


COMMANDS: Mapping[str, RequestType[ControlRequest]] = command_table(
    SetStyle, SetAlpha, SetRegions, ClearRegions, GetStatus
)
"""``live``'s commands: name -> request type (``serve`` extends it)."""


def _refuse_constant(name: str) -> NoReturn:
    raise ControlRequestError(f"request contains {name}: only finite numbers are accepted")


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


def lookup(request: Mapping[str, Any], table: Mapping[str, T]) -> T:
    """The entry of ``table`` for the request's ``command`` (an unknown one is refused)."""
    command = request.get("command")
    if isinstance(command, str) and command in table:
        return table[command]
    raise ControlRequestError(
        f"unknown command {_short(command)}; expected one of {', '.join(table)}"
    )


@overload
def parse_request(data: bytes | str | Mapping[str, Any]) -> ControlRequest: ...


@overload
def parse_request(
    data: bytes | str | Mapping[str, Any], commands: Mapping[str, RequestType[T]]
) -> T: ...


def parse_request(
    data: bytes | str | Mapping[str, Any],
    commands: Mapping[str, RequestType[Any]] = COMMANDS,
) -> Any:
    """One request (UTF-8 JSON bytes, or an already decoded object) -> the checked request of
    its command in ``commands`` (live's by default).

    Raises:
        ControlRequestError: and nothing else, whatever ``data`` holds: not UTF-8 JSON, larger
            than ``MAX_REQUEST_BYTES``, not an object, an unknown command, more than
            ``MAX_STYLES_PER_REQUEST`` styles, a relative path, a NaN/infinite/negative weight,
            an alpha outside [0, 1]...
    """
    request = decode_request(data)
    return lookup(request, commands).from_json(request)
