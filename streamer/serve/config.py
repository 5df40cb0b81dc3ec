"""Settings of ``stylestream serve``: the server (:class:`ServeConfig`) and each stream
(:class:`StreamSpec`), from a YAML file, flags, or an ``add-stream`` control request.

A YAML stream entry and an ``add-stream`` request have the same keys and go through the same
:func:`stream_spec_from_mapping`, so a bad value gives the same message either way.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from adaattn_video.errors import StylestreamError
from adaattn_video.stylizer import PRECISIONS, check_alpha, check_style_weights
from streamer.control import DEFAULT_CONTROL_ENDPOINT
from streamer.endpoints import check_bind_endpoint
from streamer.sinks.zmq import DEFAULT_ENDPOINT
from streamer.wire import WireFormatError, check_encoding, check_stream_name

DURING_OUTAGE = ("pause", "repeat")
END_OF_STREAM = ("reconnect", "stop")


class ServeConfigError(StylestreamError, ValueError):
    """A serve setting (YAML key, flag, or add-stream request field) that cannot be used."""


@dataclass(frozen=True)
class StreamSpec:
    """One stream of a ``serve`` run (a YAML ``streams:`` entry or an ``add-stream`` request).

    Attributes:
        name: ``[A-Za-z0-9_-]{1,64}``, unique; also the ZeroMQ topic and the wire ``stream``.
        source: anything ``stylestream live --source`` takes (webcam, rtsp/rtmp/http/srt URL,
            a file, ``lavfi:GRAPH``); files and lavfi are always paced at their own rate.
        styles / style_weights: style image(s) and their mix (None: equal).
        alpha: content strength in [0, 1].
        size: (height, width) frames are resized to before stylizing, or None (source's size).
        record: also write this stream's stylized frames to this MP4 file.
        capture_size / capture_fps / fourcc: what to request from a webcam.
        transport / open_timeout_s / read_timeout_s / give_up_after_s / during_outage /
            end_of_stream: network source behaviour, as for ``live``.
    """

    name: str
    source: str
    styles: tuple[str, ...]
    style_weights: tuple[float, ...] | None = None
    alpha: float = 1.0
    size: tuple[int, int] | None = None
    record: str | None = None
    capture_size: tuple[int, int] | None = None
    capture_fps: float | None = None
    fourcc: str | None = None
    transport: str = "tcp"
    open_timeout_s: float = 10.0
    read_timeout_s: float = 5.0
    give_up_after_s: float = 60.0
    during_outage: str = "pause"
    end_of_stream: str = "reconnect"

    def __post_init__(self) -> None:
        try:
            check_stream_name(self.name)
        except WireFormatError as err:
            raise ServeConfigError(f"stream name: {err}") from err
        where = f"stream {self.name}"
        if not isinstance(self.source, str) or not self.source:
            raise ServeConfigError(f"{where}: expected a source (rtsp://..., a file, lavfi:...)")
        if not self.styles:
            raise ServeConfigError(f"{where}: expected at least one style image")
        try:
            check_style_weights(self.style_weights, len(self.styles))
            check_alpha(self.alpha)
        except ValueError as err:
            raise ServeConfigError(f"{where}: {err}") from err
        if self.transport not in ("tcp", "udp"):
            raise ServeConfigError(f"{where}: transport must be tcp or udp, got {self.transport!r}")
        if self.during_outage not in DURING_OUTAGE:
            raise ServeConfigError(
                f"{where}: during_outage must be one of {DURING_OUTAGE}, got {self.during_outage!r}"
            )
        if self.end_of_stream not in END_OF_STREAM:
            raise ServeConfigError(
                f"{where}: end_of_stream must be one of {END_OF_STREAM}, got {self.end_of_stream!r}"
            )
        for key in ("open_timeout_s", "read_timeout_s", "give_up_after_s"):
            if getattr(self, key) <= 0:
                raise ServeConfigError(f"{where}: {key} must be > 0, got {getattr(self, key)}")

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready (``list-streams``); sizes as ``WxH``."""
        out: dict[str, Any] = {}
        for item in fields(self):
            value = getattr(self, item.name)
            if item.name in ("size", "capture_size") and value is not None:
                value = f"{value[1]}x{value[0]}"
            elif isinstance(value, tuple):
                value = list(value)
            out[item.name] = value
        return out


@dataclass(frozen=True)
class ServeConfig:
    """Everything a ``serve`` run needs (the YAML's top-level keys; see ``configs/serve.yaml``).

    Attributes:
        streams: the streams started at launch (more may be added over ``control``).
        weights / untrained / device / precision / style_size: the one model, as for ``live``.
        zmq: the one PUB endpoint every stream publishes on (topic = stream name), or None.
        control: REP control endpoint, or None.
        encoding / jpeg_quality: published payload.
        send_hwm: messages queued per subscriber (all streams together) before it loses some.
        queue_frames: newest frames kept per stream before the oldest is dropped (memory is
            bounded by streams x (queue_frames in + queue_frames out)).
        max_batch: most frames per model call (one per stream and round; more streams wait for
            the next round, in least-recently-served order).
        status_interval_s / seconds: status line period (0: none) / stop after this long.
        overwrite: replace existing ``record`` files.
        allow_remote_bind / curve_keys_dir: as for ``live``.
    """

    streams: tuple[StreamSpec, ...] = ()
    weights: str | None = None
    untrained: bool = False
    device: str = "auto"
    precision: str = "auto"
    style_size: int | None = 512
    zmq: str | None = DEFAULT_ENDPOINT
    control: str | None = DEFAULT_CONTROL_ENDPOINT
    encoding: str = "jpeg"
    jpeg_quality: int = 90
    send_hwm: int = 32
    queue_frames: int = 1
    max_batch: int = 8
    status_interval_s: float = 5.0
    seconds: float | None = None
    overwrite: bool = False
    allow_remote_bind: bool = False
    curve_keys_dir: str | None = None

    def __post_init__(self) -> None:
        names = [spec.name for spec in self.streams]
        duplicates = sorted({name for name in names if names.count(name) > 1})
        if duplicates:
            raise ServeConfigError(f"stream names must be unique; repeated: {duplicates}")
        if not self.streams and self.control is None:
            raise ServeConfigError(
                "nothing to serve: give streams (YAML 'streams:' or --stream NAME=SOURCE) or a "
                "control endpoint to add them at run time"
            )
        no_output = self.zmq is None and not any(spec.record for spec in self.streams)
        if no_output and self.control is None:
            raise ServeConfigError("nothing to do: give a zmq endpoint or a stream 'record'")
        if self.untrained and self.weights is not None:
            raise ServeConfigError("give either weights or untrained, not both")
        if self.precision != "auto" and self.precision not in PRECISIONS:
            raise ServeConfigError(
                f"precision must be auto or one of {sorted(PRECISIONS)}, got {self.precision!r}"
            )
        if self.style_size is not None and self.style_size < 16:
            raise ServeConfigError(f"style_size must be >= 16, got {self.style_size}")
        if self.send_hwm < 1 or self.queue_frames < 1 or self.max_batch < 1:
            raise ServeConfigError(
                "send_hwm, queue_frames and max_batch must be >= 1, got "
                f"{self.send_hwm}, {self.queue_frames}, {self.max_batch}"
            )
        if self.status_interval_s < 0:
            raise ServeConfigError(f"status_interval_s must be >= 0, got {self.status_interval_s}")
        if self.seconds is not None and self.seconds <= 0:
            raise ServeConfigError(f"seconds must be > 0, got {self.seconds}")
        try:
            check_encoding(self.encoding, self.jpeg_quality)
        except ValueError as err:
            raise ServeConfigError(str(err)) from err
        for endpoint in (self.zmq, self.control):
            if endpoint is not None:
                check_bind_endpoint(endpoint, allow_remote=self.allow_remote_bind)


# -- parsing -----------------------------------------------------------------------------------
_NONE_WORDS = ("none", "off", "")


def _wh(value: Any, key: str) -> tuple[int, int] | None:
    from streamer.cli.values import OptionValueError, parse_wh

    try:
        return parse_wh(value, key)
    except OptionValueError as err:
        raise ServeConfigError(str(err)) from err


def _typed(data: Mapping[str, Any], key: str, kind: type, default: Any, where: str) -> Any:
    value = data.get(key, default)
    if value is None:
        return None
    ok = (
        isinstance(value, bool)
        if kind is bool
        else isinstance(value, str)
        if kind is str
        else isinstance(value, (int, float)) and not isinstance(value, bool)
    )
    if kind is int and ok and isinstance(value, float) and not value.is_integer():
        ok = False
    if not ok:
        what = {bool: "true or false", str: "a string", int: "a whole number", float: "a number"}
        raise ServeConfigError(f"{where}{key}: expected {what[kind]}, got {value!r}")
    return kind(value)


def _strings(value: Any, key: str, where: str) -> tuple[str, ...]:
    items = value if isinstance(value, (list, tuple)) else [] if value is None else [value]
    if not all(isinstance(item, str) and item for item in items):
        raise ServeConfigError(f"{where}{key}: expected a list of file paths, got {value!r}")
    return tuple(items)


def _numbers(value: Any, key: str, where: str) -> tuple[float, ...] | None:
    if value is None:
        return None
    items = value if isinstance(value, (list, tuple)) else [value]
    if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in items):
        raise ServeConfigError(f"{where}{key}: expected a list of numbers, got {value!r}")
    return tuple(float(v) for v in items)


def _check_keys(data: Mapping[str, Any], known: set[str], where: str) -> None:
    unknown = sorted(str(key) for key in data if str(key).replace("-", "_") not in known)
    if unknown:
        raise ServeConfigError(
            f"{where}unknown key(s) {unknown}; known keys: {', '.join(sorted(known))}"
        )


STREAM_KEYS = {item.name for item in fields(StreamSpec)} | {"style"}


def stream_spec_from_mapping(
    data: Mapping[str, Any], *, base_dir: Path | None = None
) -> StreamSpec:
    """A YAML stream entry or an ``add-stream`` request -> :class:`StreamSpec`.

    ``style`` (or ``styles``) is a path or a list of paths; relative paths (and ``record``)
    are resolved against ``base_dir`` (the YAML file's folder) when given, and ``~`` expands.
    """
    if not isinstance(data, Mapping):
        raise ServeConfigError(f"a stream must be a mapping of keys, got {type(data).__name__}")
    data = {str(key).replace("-", "_"): value for key, value in data.items()}
    name = data.get("name")
    where = f"stream {name}: " if isinstance(name, str) else "stream: "
    _check_keys(data, STREAM_KEYS, where)
    if "style" in data and "styles" in data:
        raise ServeConfigError(f"{where}give 'style' or 'styles', not both")

    def path(text: str) -> str:
        resolved = Path(text).expanduser()
        if base_dir is not None and not resolved.is_absolute():
            resolved = base_dir / resolved
        return str(resolved)

    styles = tuple(path(s) for s in _strings(data.get("style", data.get("styles")), "style", where))
    record = _typed(data, "record", str, None, where)
    return StreamSpec(
        name=_typed(data, "name", str, "", where),
        source=_typed(data, "source", str, "", where),
        styles=styles,
        style_weights=_numbers(data.get("style_weights"), "style_weights", where),
        alpha=_typed(data, "alpha", float, 1.0, where),
        size=_wh(data.get("size"), "size"),
        record=None if record is None else path(record),
        capture_size=_wh(data.get("capture_size"), "capture_size"),
        capture_fps=_typed(data, "capture_fps", float, None, where),
        fourcc=_typed(data, "fourcc", str, None, where),
        transport=_typed(data, "transport", str, "tcp", where),
        open_timeout_s=_typed(data, "open_timeout_s", float, 10.0, where),
        read_timeout_s=_typed(data, "read_timeout_s", float, 5.0, where),
        give_up_after_s=_typed(data, "give_up_after_s", float, 60.0, where),
        during_outage=_typed(data, "during_outage", str, "pause", where),
        end_of_stream=_typed(data, "end_of_stream", str, "reconnect", where),
    )


SERVE_KEYS = {item.name for item in fields(ServeConfig)}
_SERVE_TYPES: dict[str, type] = {
    "weights": str,
    "untrained": bool,
    "device": str,
    "precision": str,
    "style_size": int,
    "zmq": str,
    "control": str,
    "encoding": str,
    "jpeg_quality": int,
    "send_hwm": int,
    "queue_frames": int,
    "max_batch": int,
    "status_interval_s": float,
    "seconds": float,
    "overwrite": bool,
    "allow_remote_bind": bool,
    "curve_keys_dir": str,
}


def serve_config_from_mapping(
    data: Mapping[str, Any], *, base_dir: Path | None = None, where: str = ""
) -> ServeConfig:
    """The YAML's top level (or flags gathered into a mapping) -> :class:`ServeConfig`.

    ``zmq`` / ``control``: ``none`` (or null) turns them off.
    """
    data = {str(key).replace("-", "_"): value for key, value in data.items()}
    if "curve_keys" in data:  # the name `live` uses
        data["curve_keys_dir"] = data.pop("curve_keys")
    _check_keys(data, SERVE_KEYS, where)
    streams = data.get("streams") or []
    if not isinstance(streams, (list, tuple)):
        raise ServeConfigError(f"{where}streams: expected a list of streams, got {streams!r}")
    values: dict[str, Any] = {}
    for key, kind in _SERVE_TYPES.items():
        if key in data:
            value = data[key]
            if key in ("zmq", "control") and (
                value is None or str(value).strip().lower() in _NONE_WORDS
            ):
                values[key] = None
                continue
            values[key] = _typed(data, key, kind, None, where)
    for key in ("weights", "curve_keys_dir"):
        if values.get(key) is not None:
            path = Path(values[key]).expanduser()
            if base_dir is not None and not path.is_absolute():
                path = base_dir / path
            values[key] = str(path)
    specs = tuple(stream_spec_from_mapping(entry, base_dir=base_dir) for entry in streams)
    return ServeConfig(streams=specs, **values)


def load_serve_config(path: str | Path, overrides: Mapping[str, Any] | None = None) -> ServeConfig:
    """Read the YAML at ``path``; ``overrides`` (flags given on the command line) win."""
    import yaml

    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text())
    except FileNotFoundError as err:
        raise ServeConfigError(f"config file {path} does not exist") from err
    except yaml.YAMLError as err:
        raise ServeConfigError(f"config file {path} is not valid YAML: {err}") from err
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ServeConfigError(f"config file {path}: expected a mapping, got {type(data).__name__}")
    data.update(overrides or {})
    # Relative paths are relative to the working folder, as in every other command's YAML.
    return serve_config_from_mapping(data, where=f"config file {path}: ")
