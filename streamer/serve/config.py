"""Settings of ``stylestream serve``: the server (:class:`ServeConfig`) and each stream
(:class:`StreamSpec`), from a YAML file, flags, or an ``add-stream`` control request.

Both are built by the one converter (:func:`configkit.convert.from_mapping`) and their
fields are the ones ``live`` and the stylizer already declare (same names, parsers and help):
the server holds one :class:`~adaattn_video.settings.StylizerSpec` (the model: ``weights``,
``device``, ``precision``, ``style_size``...; and the default ``style``/``alpha``/``size`` of
streams that give none), each stream may override ``style``, ``style_weights``, ``alpha`` and
``size`` and has its own source options (:class:`~streamer.sources.LiveOptions`), and may have
regions (``region:``, the list ``--region`` takes: still masks and chroma keys; ``uncovered``). A YAML stream
entry and an ``add-stream`` request go through the same :func:`stream_spec_from_mapping`, so a
bad value gives the same message either way.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any, Literal

from adaattn_video.errors import StylestreamError
from adaattn_video.settings import StylizerSpec, format_size, parse_size
from configkit.checks import positive
from configkit.convert import check_fields, from_mapping, option, option_like, to_mapping
from streamer.live import LiveConfig
from streamer.outputs.av_connection import EncoderSettings
from streamer.outputs.encoder_options import encoder_settings
from streamer.outputs.spec import parse_outputs, redact
from streamer.regions.specs import RegionPlan, RegionSpec, parse_regions, refuse_sequences
from streamer.sources import LiveOptions
from streamer.temporal.options import TemporalOptions
from streamer.zeromq.control import DEFAULT_CONTROL_ENDPOINT
from streamer.zeromq.endpoints import check_bind_endpoint
from streamer.zeromq.publisher import PublishOptions
from streamer.zeromq.wire import WireFormatError, check_stream_name


class ServeConfigError(StylestreamError, ValueError):
    """A serve setting (YAML key, flag, or add-stream request field) that cannot be used."""


_like = option_like  # the option of another config's field, declared once there


def _parse_regions(value: Any) -> tuple[RegionSpec, ...]:
    specs = parse_regions(value)
    refuse_sequences(specs, "a serve stream")
    return specs


def _format_regions(specs: tuple[RegionSpec, ...]) -> list[dict[str, Any]]:
    return [spec.as_dict() for spec in specs]


def _parse_optional_size(value: Any) -> int | tuple[int, int] | None:
    return None if value is None else parse_size(value)


@dataclass(frozen=True)
class StreamSpec:
    """One stream of a ``serve`` run (a YAML ``streams:`` entry or an ``add-stream`` request).

    Attributes:
        name: ``[A-Za-z0-9_-]{1,64}``, unique; also the ZeroMQ topic and the wire ``stream``.
        source: anything ``stylestream live --source`` takes (webcam, rtsp/rtmp/http/srt URL,
            a file, ``lavfi:GRAPH``); files and lavfi are always paced at their own rate.
        styles / style_weights: style image(s) and their mix; empty: the server's ``style``.
        alpha: content strength in [0, 1]; None: the server's ``alpha``.
        size: N (longer side) or (height, width) frames are stylized at; None: the server's
            ``size`` (None there too: the source's size).
        record: also write this stream's stylized frames to this MP4 file.
        outputs: standard outputs of this stream (YAML ``output:`` or ``outputs:``, a list of
            URLs as ``live --output`` takes: rtmp://, rtsp://, srt://, hls:DIR, ndi:NAME,
            virtualcam); each stream's outputs are its own (:mod:`streamer.outputs`). They
            carry the source's audio (RTMP, SRT) as ``live``'s do.
        output_options: the H.264 settings of its RTMP/RTSP/SRT/HLS outputs (YAML
            ``output_option:``, ``KEY=VALUE`` as ``live --output-option``); none: the defaults.
        region / uncovered: a style per region (``--region`` syntax, still masks and chroma
            keys) and what positions covered by none get; a stream with regions is stylized in
            its own model call (see :mod:`streamer.serve.scheduler`).
        source_options: the source options of ``live`` (webcam, network; the same keys),
            always ``realtime``.
        motion: the stream's temporal settings (``temporal``, ``keyframe_interval``,
            ``work_size``, ``temporal_*``; default off: see docs/temporal.md); a stream with
            any of them on keeps its own state and is stylized in its own model call.
    """

    name: str = option("", "the stream's name (and ZeroMQ topic)", metavar="NAME")
    source: str = _like(LiveConfig, "source")
    styles: tuple[str, ...] = _like(StylizerSpec, "styles")
    style_weights: tuple[float, ...] | None = _like(StylizerSpec, "style_weights")
    alpha: float | None = _like(StylizerSpec, "alpha", None)
    size: int | tuple[int, int] | None = option(
        None, "stylize at N (longer side) or WxH (default: the server's size)", metavar="N|WxH",
        parse=_parse_optional_size, format=format_size,
    )  # fmt: skip
    record: str | None = _like(LiveConfig, "record")
    outputs: tuple[str, ...] = _like(LiveConfig, "outputs")
    output_options: tuple[str, ...] = _like(LiveConfig, "output_options")
    region: tuple[RegionSpec, ...] = option(
        (), "regions: a list of style=IMG,mask=PNG|key=COLOUR (or mappings)",
        parse=_parse_regions, format=_format_regions, role="declared",
    )  # fmt: skip
    uncovered: Literal["style", "content"] = option(
        "style", "positions covered by no region: the stream's style or the content"
    )
    source_options: LiveOptions = option(LiveOptions(realtime=True), flatten=True)
    motion: TemporalOptions = option(TemporalOptions(), "temporal stability", flatten=True)

    def __post_init__(self) -> None:
        try:
            check_stream_name(self.name)
        except WireFormatError as err:
            raise ServeConfigError(f"stream name: {err}") from err
        where = f"stream {self.name}"
        if not isinstance(self.source, str) or not self.source:
            raise ServeConfigError(f"{where}: expected a source (rtsp://..., a file, lavfi:...)")
        try:  # the stylizer's and the source's own checks, once
            StylizerSpec(
                styles=self.styles, style_weights=self.style_weights,
                alpha=1.0 if self.alpha is None else self.alpha, size=self.size,
            )  # fmt: skip
            self.live_options()
            self.regions()
            specs = parse_outputs(self.outputs)  # a bad URL: one line, credentials masked
            object.__setattr__(self, "outputs", tuple(spec.url for spec in specs))
        except ValueError as err:
            raise ServeConfigError(f"{where}: {err}") from err

    def encoder(self) -> EncoderSettings | None:
        """The H.264 settings of the stream's outputs (None: the outputs' defaults)."""
        return encoder_settings(self.output_options) if self.output_options else None

    def regions(self) -> RegionPlan | None:
        """The stream's regions as a plan (None without regions); files are read when the
        stream starts."""
        return RegionPlan(self.region, self.uncovered) if self.region else None

    def live_options(self) -> LiveOptions:
        """How the source is opened: as ``live`` opens its ``--source``, files and lavfi paced
        at their own rate (``realtime``)."""
        return replace(self.source_options, realtime=True)

    def stylizer(self, base: StylizerSpec) -> StylizerSpec:
        """The server's spec with this stream's style, alpha and size (where it gives them)."""
        changes: dict[str, Any] = {}
        if self.styles:
            changes.update(styles=self.styles, style_weights=self.style_weights)
        if self.alpha is not None:
            changes["alpha"] = self.alpha
        if self.size is not None:
            changes["size"] = self.size
        try:
            spec = replace(base, **changes)
            spec.require_styles()
        except ValueError as err:
            raise ServeConfigError(
                f"stream {self.name}: {err} (give the stream a 'style', or the server one)"
            ) from err
        return spec

    def io_paths(self) -> tuple[list[str], list[str]]:
        """The files its regions read (styles, masks): inputs of the guard."""
        return [path for region in self.region for path in region.paths], []

    def complete(self, base: StylizerSpec) -> StreamSpec:
        """This stream with the server's style / alpha / size filled in where it has none."""
        spec = self.stylizer(base)
        return replace(
            self, styles=spec.styles, style_weights=spec.style_weights, alpha=spec.alpha,
            size=spec.size,
        )  # fmt: skip

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready (``list-streams``): the YAML keys, sizes as ``WxH``, output URLs with
        their credentials masked (:meth:`to_request` keeps them)."""
        data = to_mapping(self)
        data["output"] = [redact(url) for url in self.outputs]
        return data

    def to_request(self) -> dict[str, Any]:
        """The YAML keys as they are (credentials included): an ``add-stream`` request."""
        return to_mapping(self)


def stream_spec_from_mapping(data: Mapping[str, Any], *, source: str = "") -> StreamSpec:
    """A YAML stream entry or an ``add-stream`` request -> :class:`StreamSpec`."""
    if not isinstance(data, Mapping):
        raise ServeConfigError(f"a stream must be a mapping of keys, got {type(data).__name__}")
    name = data.get("name")
    where = source or (f"stream {name}" if isinstance(name, str) else "stream")
    if "outputs" in data:  # both names work (``live``'s YAML too)
        data = dict(data)
        extra, given = data.pop("outputs") or [], data.get("output") or []
        data["output"] = [*_as_list(given), *_as_list(extra)]
    return from_mapping(StreamSpec, data, source=where, error=ServeConfigError)


def _as_list(value: Any) -> list[Any]:
    return [value] if isinstance(value, str) else list(value)


def _parse_streams(value: Any) -> tuple[StreamSpec, ...]:
    items = [] if value is None else value
    if not isinstance(items, (list, tuple)):
        raise ServeConfigError(f"expected a list of streams, got {value!r}")
    return tuple(
        item if isinstance(item, StreamSpec) else stream_spec_from_mapping(item) for item in items
    )


@dataclass(frozen=True)
class ServeConfig:
    """Everything a ``serve`` run needs (the YAML's top-level keys; see ``configs/serve.yaml``).

    Attributes:
        streams: the streams started at launch (more may be added over ``control``), each
            completed with the server's style / alpha / size where it gives none.
        stylizer: the one model (``weights``, ``untrained``, ``device``, ``precision``,
            ``style_size``, ``max_memory``) and the streams' default style, alpha and size.
        zmq: the one PUB endpoint every stream publishes on (topic = stream name), or None.
        control: REP control endpoint, or None.
        publish: published payload (``encoding``, ``jpeg_quality``) and ``send_hwm``: messages
            queued per subscriber (all streams together, default 32) before it loses some.
        queue_frames: newest frames kept per stream before the oldest is dropped (memory is
            bounded by streams x (queue_frames in + queue_frames out)).
        max_batch: most frames per model call (one per stream and round; more streams wait for
            the next round, in least-recently-served order).
        status_interval_s / seconds: status line period (0: none) / stop after this long.
        overwrite: replace existing ``record`` files.
        allow_remote_bind / curve_keys_dir: as for ``live``.
        embedded: the engine of another front end (the studio), which adds its streams (and
            their outputs) through :meth:`~streamer.serve.server.StreamServer.add_stream`: it
            may start with no streams, no control endpoint and no ZeroMQ. Not a flag or a key.
    """

    streams: tuple[StreamSpec, ...] = option(
        (), "the streams (YAML only; on the command line: --stream NAME=SOURCE)",
        parse=_parse_streams, cli=False,
    )  # fmt: skip
    stylizer: StylizerSpec = option(StylizerSpec(), "the model and default style", flatten=True)
    zmq: str | None = _like(
        LiveConfig, "zmq", help="one PUB endpoint for all streams ('none': off)"
    )
    control: str | None = _like(LiveConfig, "control", DEFAULT_CONTROL_ENDPOINT)
    publish: PublishOptions = option(PublishOptions(send_hwm=32), flatten=True)
    queue_frames: int = option(1, "newest frames kept per stream", metavar="N", check=positive)
    max_batch: int = option(8, "most frames per model call", metavar="N", check=positive)
    status_interval_s: float = _like(LiveConfig, "status_interval_s")
    seconds: float | None = _like(LiveConfig, "seconds")
    overwrite: bool = _like(LiveConfig, "overwrite", help="replace existing stream recordings")
    allow_remote_bind: bool = _like(LiveConfig, "allow_remote_bind")
    curve_keys_dir: str | None = _like(LiveConfig, "curve_keys_dir")
    embedded: bool = option(False, "streams come from the Python API only (the studio)", cli=False)

    def __post_init__(self) -> None:
        if not isinstance(self.stylizer, StylizerSpec):
            raise ServeConfigError(f"stylizer must be a StylizerSpec, got {self.stylizer!r}")
        names = [spec.name for spec in self.streams]
        duplicates = sorted({name for name in names if names.count(name) > 1})
        if duplicates:
            raise ServeConfigError(f"stream names must be unique; repeated: {duplicates}")
        object.__setattr__(
            self, "streams", tuple(spec.complete(self.stylizer) for spec in self.streams)
        )
        if not self.streams and self.control is None and not self.embedded:
            raise ServeConfigError(
                "nothing to serve: give streams (YAML 'streams:' or --stream NAME=SOURCE) or a "
                "control endpoint to add them at run time"
            )
        no_output = self.zmq is None and not any(s.record or s.outputs for s in self.streams)
        if no_output and self.control is None and not self.embedded:
            raise ServeConfigError(
                "nothing to do: give a zmq endpoint, a stream 'record' or a stream 'output'"
            )
        check_fields(self, ServeConfigError)  # the fields' own checks (>= 1, > 0)
        for endpoint in (self.zmq, self.control):
            if endpoint is not None:
                check_bind_endpoint(endpoint, allow_remote=self.allow_remote_bind)


def serve_config_from_mapping(data: Mapping[str, Any], *, source: str = "") -> ServeConfig:
    """The YAML's top level (or flags gathered into a mapping) -> :class:`ServeConfig`.

    ``zmq`` / ``control``: ``none`` (or null) turns them off. Relative paths are relative to
    the working folder, as in every other command's YAML.
    """
    return from_mapping(ServeConfig, data, source=source, error=ServeConfigError)
