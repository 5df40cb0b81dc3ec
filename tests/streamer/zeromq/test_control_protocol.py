"""The command tables and the request types agree: every command of ``live`` and ``serve``
round-trips through its request type (object -> JSON -> bytes -> the same object), each
server answers exactly its table, and valid requests survive the wire (hypothesis)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streamer.regions.specs import RegionPlan, RegionSpec
from streamer.serve.config import StreamSpec
from streamer.serve.stream_requests import (
    SERVE_COMMANDS,
    AddStream,
    ListStreams,
    RemoveStream,
    serve_handlers,
)
from streamer.zeromq.control import (
    COMMANDS,
    MAX_STYLES_PER_REQUEST,
    ClearRegions,
    ControlRequestError,
    ForStream,
    GetStatus,
    Handlers,
    SetAlpha,
    SetRegions,
    SetStyle,
    live_handlers,
    parse_request,
)

REGIONS = RegionPlan(
    (
        RegionSpec(style="/s/a.png", key="#00ff00", tolerance=12),
        RegionSpec(style="/s/b.png", mask="/m/p.png", invert=True, style_mask="/s/m.png"),
    ),
    "content",
)
LIVE_SAMPLES = {
    "set-style": SetStyle(("/s/a.jpg", "/s/b.jpg"), (0.7, 0.3)),
    "set-alpha": SetAlpha(0.25),
    "set-regions": SetRegions(REGIONS),
    "clear-regions": ClearRegions(),
    "get-status": GetStatus(),
}
DOOR = StreamSpec(
    name="door",
    source="lavfi:testsrc2",
    styles=("/s/a.jpg",),
    size=(48, 64),
    region=REGIONS.regions,
    uncovered="content",
    record="/out/door.mp4",
)
SERVE_SAMPLES = {
    "add-stream": AddStream(DOOR),
    "remove-stream": RemoveStream("door"),
    **{name: ForStream(request, "door") for name, request in LIVE_SAMPLES.items()},
    "list-streams": ListStreams(),
    "get-status": GetStatus(),
}


@pytest.mark.parametrize(
    ("table", "samples"),
    [(COMMANDS, LIVE_SAMPLES), (SERVE_COMMANDS, SERVE_SAMPLES)],
    ids=["live", "serve"],
)
def test_every_command_round_trips_through_its_request_type(
    table: Mapping[str, Any], samples: Mapping[str, Any]
) -> None:
    assert set(samples) == set(table)
    for name, request in samples.items():
        body = request.to_json()
        assert body["command"] == name == table[name].command
        assert table[name].from_json(body) == request
        assert parse_request(json.dumps(body).encode(), table) == request


def test_each_server_answers_exactly_its_table() -> None:
    class NoTarget:  # the handlers are built, never called
        pass

    for handlers, table in (
        (live_handlers(NoTarget()), COMMANDS),  # type: ignore[arg-type]
        (serve_handlers(NoTarget()), SERVE_COMMANDS),  # type: ignore[arg-type]
    ):
        assert isinstance(handlers, Handlers)
        assert handlers.commands == tuple(table)
        assert all(handlers.routes[name].request_type == table[name] for name in table)


def test_a_serve_request_without_a_stream_parses_and_live_ignores_the_stream() -> None:
    parsed = parse_request({"command": "set-alpha", "alpha": 0.5}, SERVE_COMMANDS)
    assert parsed == ForStream(SetAlpha(0.5), None)  # refused by the server, naming its streams
    assert parse_request({"command": "set-alpha", "alpha": 0.5, "stream": "x"}) == SetAlpha(0.5)
    with pytest.raises(ControlRequestError, match="'stream' must be a stream name"):
        parse_request({"command": "set-alpha", "alpha": 0.5, "stream": 3}, SERVE_COMMANDS)
    with pytest.raises(ControlRequestError, match="unknown command 'add-stream'"):
        parse_request(SERVE_SAMPLES["add-stream"].to_json())  # live does not know it


def test_requests_are_checked_when_built_as_on_the_wire(tmp_path) -> None:
    """The client's request objects refuse what the server refuses, with the same reason."""
    cases = [
        (lambda: SetStyle(("/a.jpg",) * 17), "at most 16 per request"),
        (lambda: SetStyle(("a.jpg",)), "send an absolute path"),
        (lambda: SetStyle(("/a.jpg",), (float("nan"),)), "finite"),
        (lambda: SetStyle(("/a.jpg", "/b.jpg"), (0.0, 0.0)), "positive sum"),
        (lambda: SetAlpha(1.5), r"alpha must be in \[0, 1\]"),
        (lambda: SetStyle.from_paths(["a.jpg"] * 17).to_json(), "at most 16"),
        (lambda: SetRegions.from_specs([RegionSpec(style="a.png", mask="m.mp4")]).to_json(), "sequence"),
        (lambda: AddStream(StreamSpec(name="x", source="lavfi:testsrc2", styles=("a.png",))),
         "relative"),
    ]  # fmt: skip
    for build, reason in cases:
        with pytest.raises(ControlRequestError, match=reason):
            build()
    assert SetStyle.from_paths([tmp_path / "a.jpg"]).to_json() == {
        "command": "set-style",
        "styles": [str(tmp_path / "a.jpg")],
    }


_paths = st.lists(
    st.text(st.characters(blacklist_characters="\x00", codec="utf-8"), min_size=1, max_size=12),
    min_size=1,
    max_size=MAX_STYLES_PER_REQUEST,
).map(lambda names: tuple(f"/{name}" for name in names))
_set_style = _paths.flatmap(
    lambda styles: st.tuples(
        st.just(styles),
        st.none()
        | st.lists(st.floats(0, 1e6), min_size=len(styles), max_size=len(styles))
        .filter(lambda ws: sum(ws) > 0)
        .map(tuple),
    )
).map(lambda args: SetStyle(*args))
_region = st.builds(
    RegionSpec,
    style=st.sampled_from(["/s/a.png", "/s/b c.png"]),
    key=st.sampled_from(["green", "blue", "#00ff00"]),
    tolerance=st.floats(0, 100),
    softness=st.floats(0, 100),
    invert=st.booleans(),
)
_set_regions = st.builds(
    lambda regions, uncovered: SetRegions(RegionPlan(tuple(regions), uncovered)),
    st.lists(_region, min_size=1, max_size=MAX_STYLES_PER_REQUEST),
    st.sampled_from(["style", "content"]),
)
_live = _set_style | st.floats(0, 1).map(SetAlpha) | _set_regions | st.just(GetStatus())


@settings(max_examples=200, deadline=None)
@given(_live, st.none() | st.sampled_from(["door", "cam-2"]))
def test_valid_requests_survive_the_wire(request, stream) -> None:
    data = json.dumps(request.to_json(), allow_nan=False).encode()
    assert parse_request(data) == request
    aimed = ForStream(request, stream).to_json() if not isinstance(request, GetStatus) else None
    if aimed is not None:
        assert parse_request(json.dumps(aimed), SERVE_COMMANDS) == ForStream(request, stream)
