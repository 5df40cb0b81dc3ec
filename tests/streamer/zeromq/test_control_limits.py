"""Control endpoint limits: too many styles or bytes, NaN/infinite numbers are refused with a
reason and leave the stream unchanged; a style switch is encoded off the stylizing thread and
swapped in whole. The request parser is fuzzed with hypothesis: it raises only
ControlRequestError."""

from __future__ import annotations

import json
import re
import threading
import time

import numpy as np
import pytest
from helpers.cli import main_error
from helpers.network import ANY_PORT
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from adaattn_video.assets import style_images
from adaattn_video.stylizer import FrameStylizer, StylizerConfig
from streamer.cli import main
from streamer.regions.specs import RegionPlan
from streamer.regions.switch import RegionSwitch
from streamer.zeromq.control import (
    COMMANDS,
    MAX_REQUEST_BYTES,
    MAX_STYLES_PER_REQUEST,
    ControlError,
    ControlRequest,
    ControlRequestError,
    ControlServer,
    SetAlpha,
    SetStyle,
    live_handlers,
    parse_request,
    send_command,
)

STYLE_A, STYLE_B = (str(p) for p in style_images()[:2])
SETTINGS = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture
def stylizer(model) -> FrameStylizer:
    stylizer = FrameStylizer(model, StylizerConfig(style_size=32))
    stylizer.set_style(STYLE_A)
    return stylizer


@pytest.fixture
def switch(stylizer) -> RegionSwitch:
    return RegionSwitch(stylizer)


@pytest.fixture
def server(switch):
    with ControlServer(live_handlers(switch), ANY_PORT) as running:
        yield running


def refused(
    server: ControlServer, switch: RegionSwitch, request: dict | bytes, match: str
) -> float:
    """Send raw bytes or a request; expect an error reply with ``match`` and ``switch``
    unchanged; returns seconds."""
    data = request if isinstance(request, bytes) else json.dumps(request).encode()
    before_style, before_alpha = switch.style, switch.alpha
    started = time.perf_counter()
    reply = server.handle_bytes(data)
    elapsed = time.perf_counter() - started
    assert reply["ok"] is False and match in reply["error"], reply
    assert switch.style is before_style and switch.alpha == before_alpha
    return elapsed


def test_1300_styles_are_refused_at_once(server, switch):
    styles = [f"/srv/styles/painting_{i:05d}_long_name.jpg" for i in range(1300)]
    request = {"command": "set-style", "styles": styles}
    assert 55_000 < len(json.dumps(request)) < MAX_REQUEST_BYTES  # the reported 61 KB request
    elapsed = refused(server, switch, request, f"at most {MAX_STYLES_PER_REQUEST} per request")
    assert elapsed < 0.5
    # over the socket too: a reply, not a dropped connection
    with pytest.raises(ControlError, match="at most 16 per request"):
        send_command(server.endpoint, request, timeout_s=10)


def test_oversized_request_gets_a_reply(server, switch):
    big = {"command": "get-status", "padding": "x" * (MAX_REQUEST_BYTES + 10)}
    refused(server, switch, json.dumps(big).encode(), "byte limit")
    with pytest.raises(ControlError, match="byte limit"):
        send_command(server.endpoint, big, timeout_s=10)
    assert send_command(server.endpoint, {"command": "get-status"})["ok"] is True


@pytest.mark.parametrize(
    ("raw", "match"),
    [
        (b'{"command": "set-style", "styles": ["%s"], "weights": [NaN]}', "NaN"),
        (b'{"command": "set-style", "styles": ["%s", "%s"], "weights": [1, Infinity]}', "Infinity"),
        (b'{"command": "set-style", "styles": ["%s"], "weights": [1e999]}', "finite"),
        (b'{"command": "set-style", "styles": ["%s"], "weights": [-1]}', ">= 0"),
        (b'{"command": "set-style", "styles": ["%s", "%s"], "weights": [0, 0]}', "positive sum"),
        (b'{"command": "set-alpha", "alpha": NaN}', "NaN"),
        (b'{"command": "set-alpha", "alpha": -Infinity}', "-Infinity"),
        (b'{"command": "set-alpha", "alpha": 1e999}', "finite"),
        (b'{"command": "set-alpha", "alpha": ' + b"9" * 400 + b"}", "finite"),
    ],
)
def test_non_finite_numbers_are_refused_and_the_stream_is_unchanged(server, switch, raw, match):
    count = raw.count(b"%s")
    data = raw % tuple(STYLE_B.encode() for _ in range(count)) if count else raw
    refused(server, switch, data, match)


def test_nan_weights_from_the_command_line_are_one_error_line(server, switch, capsys):
    line = main_error(
        ["control", server.endpoint, "set-style", STYLE_B, "--weights", "nan"], capsys
    )
    assert re.search(r"nan|finite", line, re.IGNORECASE)
    before = switch.style
    code = main(["control", server.endpoint, "set-style", *([STYLE_B] * 17)])
    assert code == 2 and "at most 16" in capsys.readouterr().err
    assert switch.style is before and server.requests_served == 0  # never sent


class SlowStyleStylizer(FrameStylizer):
    """A real stylizer whose style encoding takes 0.3 s per image (a big style on a slow
    machine), to see what the stylizing thread does meanwhile."""

    def encode_style(self, image):
        time.sleep(0.3)
        return super().encode_style(image)


def test_a_switch_is_encoded_off_the_stylizing_thread_and_swapped_whole(model):
    stylizer = SlowStyleStylizer(model, StylizerConfig(style_size=32))
    stylizer.set_style(STYLE_A)
    frame = np.random.default_rng(0).integers(0, 256, (32, 32, 3), dtype=np.uint8)
    stylizer(frame)  # warm-up
    old = stylizer.style
    with ControlServer(live_handlers(RegionSwitch(stylizer)), ANY_PORT) as server:
        result = {}
        request = {"command": "set-style", "styles": [STYLE_B] * 4}  # 4 x 0.3 s of encoding
        thread = threading.Thread(target=lambda: result.update(reply=server.handle_bytes(
            json.dumps(request).encode())))  # fmt: skip
        thread.start()
        seen, gaps = [], []
        while thread.is_alive():
            started = time.perf_counter()
            stylizer(frame)
            gaps.append(time.perf_counter() - started)
            seen.append(stylizer.style)
        thread.join()
    assert result["reply"]["ok"] is True
    # frames kept flowing during the 1.2 s encode, each call fast (never waiting for it)
    assert len(gaps) >= 5 and max(gaps) < 0.3 * 2
    # every frame saw either the old style or the complete new one
    assert all(s is old or s is stylizer.style for s in seen)
    assert stylizer.style is not old and len(stylizer.style.features) == 4


# -- fuzzing the parser ------------------------------------------------------------------------
json_scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats()
    | st.text(max_size=20)
    | st.sampled_from(["/abs/a.jpg", "rel.jpg", "", *COMMANDS])
)
json_values = st.recursive(
    json_scalars,
    lambda inner: (
        st.lists(inner, max_size=20) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=30,
)
requests = st.fixed_dictionaries(
    {"command": st.sampled_from([*COMMANDS, "reboot"]) | json_scalars},
    optional={"styles": json_values, "weights": json_values, "alpha": json_values},
)


def check_parsed(data) -> None:
    try:
        request = parse_request(data)
    except ControlRequestError:
        return
    assert isinstance(request, ControlRequest) and isinstance(request, COMMANDS[request.command])
    if isinstance(request, SetStyle):
        assert 1 <= len(request.styles) <= MAX_STYLES_PER_REQUEST
        if request.weights is not None:
            assert len(request.weights) == len(request.styles)
            assert all(np.isfinite(request.weights)) and sum(request.weights) > 0
    if isinstance(request, SetAlpha):
        assert 0.0 <= request.alpha <= 1.0
    assert parse_request(request.to_json()) == request  # what it means survives the wire


@SETTINGS
@given(st.binary(max_size=500))
def test_parser_on_random_bytes(data):
    check_parsed(data)


@SETTINGS
@given(requests)
def test_parser_on_random_requests(request):
    check_parsed(json.dumps(request, allow_nan=True).encode())
    check_parsed(request)  # already decoded (the handle() path)


@SETTINGS
@given(
    st.sampled_from(
        [
            {"command": "set-style", "styles": ["/a.jpg", "/b.jpg"], "weights": [0.7, 0.3]},
            {"command": "set-alpha", "alpha": 0.5},
            {"command": "get-status"},
        ]
    ),
    st.lists(st.tuples(st.integers(0, 10**4), st.integers(0, 255)), min_size=1, max_size=6),
)
def test_parser_on_mutated_requests(request, flips):
    data = bytearray(json.dumps(request).encode())
    for position, value in flips:
        data[position % len(data)] = value
    check_parsed(bytes(data))


class RefusingTarget:
    """Stands in for the model in the fuzzed server (a StyleTarget; no file is ever read)."""

    style_id = "a"
    alpha = 1.0

    def set_style(self, styles, weights=None):
        raise FileNotFoundError(f"{styles[0]} does not exist")

    def apply(self, plan: RegionPlan) -> None:
        raise FileNotFoundError(f"{plan.regions[0].style} does not exist")

    def clear(self) -> None:
        pass

    def regions_status(self):
        return {"regions": [], "uncovered": None}

    def check_style_memory(self, styles) -> None:
        pass


@pytest.fixture(scope="module")
def fuzz_target() -> RefusingTarget:
    return RefusingTarget()


@pytest.fixture(scope="module")
def fuzz_server(fuzz_target):
    with ControlServer(live_handlers(fuzz_target), ANY_PORT) as running:
        yield running


@SETTINGS
@given(request=requests | st.binary(max_size=200))
def test_server_always_answers_with_a_json_reply(fuzz_server, fuzz_target, request):
    data = request if isinstance(request, bytes) else json.dumps(request, allow_nan=True).encode()
    reply = fuzz_server.handle_bytes(data)
    assert isinstance(reply["ok"], bool) and (reply["ok"] or reply["error"])
    json.dumps(reply, allow_nan=False)  # the reply is strict JSON
    assert 0.0 <= fuzz_target.alpha <= 1.0
