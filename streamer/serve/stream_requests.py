"""The control commands of ``stylestream serve``: ``live``'s table extended.

Requests (REQ/REP, one JSON object each way, as for ``live``)::

    {"command": "add-stream", "stream": {"name": "door", "source": "rtsp://...", "style": [...]}}
    {"command": "remove-stream", "stream": "door"}
    {"command": "set-style", "stream": "door", "styles": ["/abs/a.jpg"], "weights": null}
    {"command": "set-alpha", "stream": "door", "alpha": 0.6}
    {"command": "set-regions", "stream": "door", "regions": [{"style": "/abs/b.jpg",
                                                              "key": "green"}]}
    {"command": "clear-regions", "stream": "door"}
    {"command": "list-streams"}
    {"command": "get-status"}

``set-style`` / ``set-alpha`` / ``set-regions`` / ``clear-regions`` are ``live``'s requests
(same checks and limits) aimed at one stream (:class:`~streamer.zeromq.control.protocol.ForStream`)
and carried out by ``live``'s handlers on that stream's stylizer. A bad request is refused with
``{"ok": false, "error": ...}`` and changes nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

from streamer.serve.config import StreamSpec, stream_spec_from_mapping
from streamer.zeromq.control import targets
from streamer.zeromq.control.protocol import (
    MAX_STYLES_PER_REQUEST,
    ClearRegions,
    ControlRequest,
    ControlRequestError,
    ForStream,
    GetStatus,
    Json,
    SetAlpha,
    SetRegions,
    SetStyle,
    command_table,
    stream_name,
)
from streamer.zeromq.control.server import Handlers, Route

if TYPE_CHECKING:
    from streamer.serve.server import StreamServer
    from streamer.serve.stream import StreamRuntime


@dataclass(frozen=True)
class AddStream(ControlRequest):
    """Start a stream: ``stream`` holds the keys of a YAML ``streams:`` entry. At most
    ``MAX_STYLES_PER_REQUEST`` styles (regions included); every path absolute."""

    command: ClassVar[str] = "add-stream"
    spec: StreamSpec

    def __post_init__(self) -> None:
        spec = self.spec
        if len(spec.styles) + len(spec.region) > MAX_STYLES_PER_REQUEST:
            raise ControlRequestError(
                f"add-stream got {len(spec.styles) + len(spec.region)} styles (regions "
                f"included); at most {MAX_STYLES_PER_REQUEST} per request"
            )
        region_files = tuple(path for region in spec.region for path in region.paths)
        hls_dirs = tuple(url[4:] for url in spec.outputs if url.lower().startswith("hls:"))
        files = spec.styles + region_files + hls_dirs + ((spec.record,) if spec.record else ())
        for path in files:
            if not Path(path).is_absolute():
                raise ControlRequestError(
                    f"path {path!r} is relative; the server cannot know your working folder: "
                    "send an absolute path (stylestream control does)"
                )

    @classmethod
    def from_json(cls, request: Mapping[str, Any]) -> AddStream:
        entry = request.get("stream")
        if not isinstance(entry, Mapping):
            raise ControlRequestError("add-stream needs 'stream': an object with the YAML keys")
        try:
            spec = stream_spec_from_mapping(entry)
        except (ValueError, TypeError) as err:  # ServeConfigError: a bad key or value
            raise ControlRequestError(str(err)) from err
        return cls(spec)

    def to_json(self) -> Json:
        return {"command": self.command, "stream": self.spec.to_request()}


@dataclass(frozen=True)
class RemoveStream(ControlRequest):
    """Stop a stream (its threads end, its source closes, its recording is finalized, its
    outputs are closed)."""

    command: ClassVar[str] = "remove-stream"
    stream: str | None

    @classmethod
    def from_json(cls, request: Mapping[str, Any]) -> RemoveStream:
        return cls(stream_name(request))

    def to_json(self) -> Json:
        return {"command": self.command, "stream": self.stream}


@dataclass(frozen=True)
class ListStreams(ControlRequest):
    """Every stream's settings (the YAML keys, output credentials masked), state, error and
    outputs (each one's state, frames, drops, reconnects, encoder latency)."""

    command: ClassVar[str] = "list-streams"

    @classmethod
    def from_json(cls, request: Mapping[str, Any]) -> ListStreams:
        return cls()


SERVE_COMMANDS = command_table(
    AddStream,
    RemoveStream,
    ForStream.of(SetStyle),
    ForStream.of(SetAlpha),
    ForStream.of(SetRegions),
    ForStream.of(ClearRegions),
    ListStreams,
    GetStatus,
)
"""``serve``'s commands: name -> request type (``live``'s, aimed at a stream, and its own)."""

R = TypeVar("R", bound=ControlRequest)


def _on_stream(
    server: StreamServer, handler: Callable[[StreamRuntime, R], Json]
) -> Callable[[ForStream[R]], Json]:
    """``handler`` run on the stream the request names; the reply names the stream."""

    def handle(request: ForStream[R]) -> Json:
        stream = server.stream(request.stream)
        return {"stream": stream.name, **handler(stream, request.request)}

    return handle


def _set_style(stream: StreamRuntime, request: SetStyle) -> Json:
    return targets.set_style(stream.stylizer, request)


def _set_alpha(stream: StreamRuntime, request: SetAlpha) -> Json:
    return targets.set_alpha(stream.stylizer, request)


def _set_regions(stream: StreamRuntime, request: SetRegions) -> Json:
    reply = targets.set_regions(stream.stylizer, request)
    # list-streams shows the current regions
    stream.spec = replace(
        stream.spec, region=request.plan.regions, uncovered=request.plan.uncovered
    )
    return reply


def _clear_regions(stream: StreamRuntime, request: ClearRegions) -> Json:
    reply = targets.clear_regions(stream.stylizer, request)
    stream.spec = replace(stream.spec, region=(), uncovered="style")
    return reply


def serve_handlers(server: StreamServer) -> Handlers:
    """:data:`SERVE_COMMANDS` carried out on ``server``."""

    def add(request: AddStream) -> Json:
        runtime = server.add_stream(request.spec)
        return {
            "added": request.spec.name,
            "style_id": runtime.stylizer.style_id,
            "outputs": [o.spec.redacted() for o in runtime.standard_outputs.outputs],
        }

    def remove(request: RemoveStream) -> Json:
        return server.remove_stream(server.stream(request.stream).name)

    return Handlers(
        (
            Route(AddStream, add),
            Route(RemoveStream, remove),
            Route(ForStream.of(SetStyle), _on_stream(server, _set_style)),
            Route(ForStream.of(SetAlpha), _on_stream(server, _set_alpha)),
            Route(ForStream.of(SetRegions), _on_stream(server, _set_regions)),
            Route(ForStream.of(ClearRegions), _on_stream(server, _clear_regions)),
            Route(ListStreams, lambda _: {"streams": server.list_streams()}),
            Route(GetStatus, lambda _: server.status()),
        )
    )
