"""The control endpoint: real REQ/REP sockets on loopback, the real (untrained) model.

The end-to-end test switches the style of a running live stream and checks every received
frame against the same frame stylized offline with the style its header names."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pytest
import zmq
from helpers.live_helpers import (
    LiveRun,
    PatternSource,
    receive_until,
)
from helpers.network import ANY_PORT

from adaattn_video.assets import style_images
from adaattn_video.stylizer import FrameStylizer, StylizerConfig, StylizerSpec
from streamer.live import LiveConfig
from streamer.regions.switch import RegionSwitch
from streamer.temporal.options import TemporalOptions
from streamer.zeromq.control import (
    ControlError,
    ControlServer,
    SetAlpha,
    SetStyle,
    live_handlers,
    send_command,
    send_request,
)
from streamer.zeromq.publisher import PublishOptions
from streamer.zeromq.subscriber import Subscriber

STYLE_A, STYLE_B = style_images()[:2]

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _stylizer(model) -> FrameStylizer:
    stylizer = FrameStylizer(model, StylizerConfig(style_size=64))
    stylizer.set_style(STYLE_A)
    return stylizer


@pytest.fixture
def switch(model) -> RegionSwitch:
    return RegionSwitch(_stylizer(model))


@pytest.fixture
def server(switch: RegionSwitch):
    handlers = live_handlers(switch, status=lambda: {"fps_out": 12.5})
    with ControlServer(handlers, ANY_PORT) as running:
        yield running


def test_set_style_switches_and_reports_the_new_id(
    server: ControlServer, switch: RegionSwitch
) -> None:
    before = switch.style
    reply = send_command(server.endpoint, SetStyle.from_paths([STYLE_B]).to_json(), timeout_s=10)
    assert reply["ok"] is True and reply["style_id"] == STYLE_B.stem
    assert switch.style is not before and switch.style_id == STYLE_B.stem


def test_style_mix_with_weights(server: ControlServer, switch: RegionSwitch) -> None:
    reply = send_command(server.endpoint, SetStyle.from_paths([STYLE_A, STYLE_B], [3, 1]).to_json())
    assert reply["style_id"] == f"{STYLE_A.stem}:0.75+{STYLE_B.stem}:0.25"
    assert switch.style.weights == (0.75, 0.25)


def test_bad_style_files_are_rejected_and_the_style_is_kept(
    server: ControlServer, switch: RegionSwitch, tmp_path: Path
) -> None:
    before = switch.style
    not_an_image = tmp_path / "notes.jpg"
    not_an_image.write_text("hello")
    for bad in (tmp_path / "missing.jpg", not_an_image):
        with pytest.raises(ControlError, match=r"refused: .*(missing|notes)\.jpg"):
            send_command(server.endpoint, SetStyle.from_paths([bad]).to_json())
    # a raw request (SetStyle checks the weights before sending)
    with pytest.raises(ControlError, match="expected 1 style weights"):
        send_command(
            server.endpoint, {"command": "set-style", "styles": [str(STYLE_B)], "weights": [1, 2]}
        )
    assert switch.style is before


def test_alpha_and_status(server: ControlServer, switch: RegionSwitch) -> None:
    assert send_request(server.endpoint, SetAlpha(0.25))["alpha"] == 0.25
    assert switch.alpha == 0.25
    with pytest.raises(ControlError, match=r"alpha must be in \[0, 1\], got 1.5"):
        send_command(server.endpoint, {"command": "set-alpha", "alpha": 1.5})
    status = send_command(server.endpoint, {"command": "get-status"})
    assert status == {
        "ok": True, "style_id": STYLE_A.stem, "alpha": 0.25, "regions": [], "uncovered": None,
        "fps_out": 12.5,
        "temporal": {"mode": "off", "keyframe_interval": 1, "work_size": None, "frames": 0,
                     "stylized": 0, "warped": 0, "fallbacks": 0, "blended": 0, "resets": 0,
                     "cuts": 0},
    }  # fmt: skip


@pytest.mark.parametrize(
    ("request_", "message"),
    [
        ({"command": "reboot"}, "unknown command 'reboot'"),
        ({"styles": ["/a.jpg"]}, "unknown command None"),
        ({"command": "set-style", "styles": []}, "needs 'styles'"),
        ({"command": "set-style", "styles": ["relative.jpg"]}, "send an absolute path"),
        ({"command": "set-style", "styles": ["/a.jpg"], "weights": "1"}, "must be a list"),
        ({"command": "set-alpha", "alpha": "high"}, "needs a number"),
    ],
)
def test_malformed_requests_get_error_replies(
    server: ControlServer, request_: dict, message: str
) -> None:
    with pytest.raises(ControlError, match=message):
        send_command(server.endpoint, request_)


def test_non_json_request_gets_an_error_reply_and_the_server_keeps_serving(
    server: ControlServer,
) -> None:
    context = zmq.Context()
    socket = context.socket(zmq.REQ)
    socket.setsockopt(zmq.LINGER, 0)
    socket.setsockopt(zmq.RCVTIMEO, 5000)
    socket.connect(server.endpoint)
    try:
        socket.send(b"\x80\x04pickle?")
        reply = json.loads(socket.recv())
    finally:
        socket.close()
        context.term()
    assert reply["ok"] is False and "not UTF-8 JSON" in reply["error"]
    assert send_command(server.endpoint, {"command": "get-status"})["ok"] is True


def test_no_server_is_a_clear_timeout() -> None:
    with pytest.raises(ControlError, match=r"no reply from tcp://127\.0\.0\.1:9 within 0\.3 s"):
        send_command("tcp://127.0.0.1:9", {"command": "get-status"}, timeout_s=0.3)


@pytest.mark.slow
def test_style_switch_on_a_running_stream_applies_from_the_next_frame(
    model, tmp_path: Path
) -> None:
    stylizer = _stylizer(model)
    source = PatternSource(size=(64, 64), fps=30)
    config = LiveConfig(
        "pattern", stylizer=StylizerSpec(styles=(str(STYLE_A),)), zmq=ANY_PORT, publish=PublishOptions(encoding="rgb24", send_hwm=64),
        control=ANY_PORT, status_interval_s=0,
        motion=TemporalOptions(temporal="off"),  # each frame exactly its style's per-frame output
    )  # fmt: skip
    run = LiveRun(config, stylizer=stylizer, source=source)
    try:
        with Subscriber(run.endpoints["zmq"], receive_timeout_s=10.0, receive_hwm=64) as sub:
            control = run.endpoints["control"]
            first = receive_until(sub, lambda fs: len(fs) >= 4)
            reply = send_command(control, SetStyle.from_paths([STYLE_B]).to_json(), timeout_s=20)
            switched_at = time.time()
            assert reply["style_id"] == STYLE_B.stem
            after = receive_until(
                sub, lambda fs: sum(f.header.capture_time > switched_at for f in fs) >= 4
            )
            # A bad file is refused; the stream goes on with style B.
            with pytest.raises(ControlError, match=r"missing\.jpg"):
                send_command(
                    control, SetStyle.from_paths([tmp_path / "missing.jpg"]).to_json(), timeout_s=20
                )
            rejected_at = time.time()
            later = receive_until(
                sub, lambda fs: sum(f.header.capture_time > rejected_at for f in fs) >= 3
            )
    finally:
        result = run.stop()

    labels = [f.header.style_id for f in first + after + later]
    assert labels[0] == STYLE_A.stem
    # Once the new style appears, the old one never comes back; frames captured after the
    # reply are all in the new style.
    first_b = labels.index(STYLE_B.stem)
    assert set(labels[:first_b]) == {STYLE_A.stem} and set(labels[first_b:]) == {STYLE_B.stem}
    assert all(
        f.header.style_id == STYLE_B.stem
        for f in after + later
        if f.header.capture_time > switched_at
    )
    assert result.stats.frames_out >= len(labels)

    # Each label is the truth: the pixels are that frame stylized offline with that style.
    reference = FrameStylizer(model, StylizerConfig(style_size=64))
    for style, frames in ((STYLE_A, first[:2]), (STYLE_B, (after + later)[-2:])):
        reference.set_style(style)
        for frame in frames:
            expected = reference(source.image(frame.header.index))
            # same model, same input, same thread count: equal up to float rounding to uint8
            diff = np.abs(frame.image.astype(int) - expected.astype(int))
            assert diff.max() <= 1, (style.stem, frame.header.index, diff.max())
    # ...and the two styles really give different pictures.
    reference.set_style(STYLE_A)
    a = reference(source.image(0)).astype(int)
    reference.set_style(STYLE_B)
    assert np.abs(a - reference(source.image(0)).astype(int)).mean() > 2


def test_control_with_curve_accepts_only_key_holders(model, tmp_path: Path) -> None:
    from streamer.zeromq.curve import generate_keys

    keys = generate_keys(tmp_path / "keys")
    switch = RegionSwitch(_stylizer(model))
    with ControlServer(live_handlers(switch), ANY_PORT, curve_keys_dir=keys) as server:
        status = send_command(server.endpoint, {"command": "get-status"}, curve_keys_dir=keys)
        assert status["style_id"] == STYLE_A.stem
        with pytest.raises(ControlError, match="no reply"):
            send_command(server.endpoint, {"command": "set-alpha", "alpha": 0.1}, timeout_s=0.5)
        assert switch.alpha == 1.0
