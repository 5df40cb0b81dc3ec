"""``stylestream serve``: many streams, one model. Real lavfi sources paced in real time, real
GStreamer RTSP servers on loopback, real ZeroMQ sockets, the real (untrained) video model on
tiny frames; the server runs in-process (its threads are inspected) and is driven over its real
control endpoint."""

from __future__ import annotations

import json
import re
import threading
import time
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import zmq
from helpers.cli import main_error
from helpers.live_helpers import serving
from helpers.network import ANY_PORT
from PIL import Image

from streamer.cli import command_config, main
from streamer.frames import Frame
from streamer.serve.config import (
    ServeConfigError,
    serve_config_from_mapping,
)
from streamer.serve.server import ServeResult
from streamer.zeromq.control import ControlError, send_command
from streamer.zeromq.subscriber import Subscriber
from streamer.zeromq.wire import WireFormatError, decode_frame, encode_frame, split_topic

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def styles(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """Three small style images whose file names are their style ids."""
    folder = tmp_path_factory.mktemp("styles")
    rng = np.random.default_rng(0)
    out = {}
    for name in ("red", "blue", "green"):
        path = folder / f"{name}.png"
        Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(path)
        out[name] = str(path)
    return out


def _config(streams: list[dict[str, Any]], **overrides: Any):
    data: dict[str, Any] = dict(
        untrained=True,
        device="cpu",
        precision="fp32",
        style_size=32,
        zmq=ANY_PORT,
        control=ANY_PORT,
        status_interval_s=0,
        streams=streams,
    )
    data.update(overrides)
    return serve_config_from_mapping(data)


def _frames_by_stream(endpoint: str, seconds: float, topic: bytes = b"") -> dict[str, list]:
    """A plain pyzmq SUB: every [topic, header, payload] message for ``seconds``."""
    context = zmq.Context()
    socket = context.socket(zmq.SUB)
    socket.setsockopt(zmq.SUBSCRIBE, topic)
    socket.setsockopt(zmq.RCVTIMEO, 200)
    socket.connect(endpoint)
    got: dict[str, list] = defaultdict(list)
    try:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            try:
                parts = socket.recv_multipart()
            except zmq.Again:
                continue
            assert len(parts) == 3, len(parts)
            header = json.loads(parts[1])
            got[parts[0].decode()].append((time.monotonic(), header))
    finally:
        socket.close(linger=0)
        context.term()
    return got


def _wait_for(predicate, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


# -- wire and settings (fast) -----------------------------------------------------------------
def test_topic_messages_carry_the_stream_and_live_messages_stay_version_1() -> None:
    image = np.zeros((4, 6, 3), np.uint8)
    frame = Frame(index=3, image=image, capture_time_s=1.0)
    header, parts = encode_frame(frame, encoding="rgb24", style_id="wave", stream="door")
    assert len(parts) == 3 and parts[0] == b"door"
    assert json.loads(parts[1])["stream"] == "door" and header.stream == "door"
    topic, rest = split_topic(parts)
    decoded, picture = decode_frame(rest)
    assert topic == "door" and decoded.stream == "door" and picture.shape == (4, 6, 3)
    # live: two parts, and no "stream" key at all (its format is unchanged)
    _, live_parts = encode_frame(frame, encoding="rgb24", style_id="wave")
    assert len(live_parts) == 2 and "stream" not in json.loads(live_parts[0])
    assert split_topic(live_parts) == (None, live_parts)
    with pytest.raises(WireFormatError, match="stream name"):
        split_topic([b"bad topic!", parts[1], parts[2]])


def test_yaml_config_and_its_mistakes(tmp_path: Path, styles: dict[str, str]) -> None:
    path = tmp_path / "serve.yaml"
    path.write_text(
        "untrained: true\nzmq: tcp://127.0.0.1:5555\ncontrol: none\nstreams:\n"
        "  - name: door\n    source: rtsp://127.0.0.1:8554/live\n"
        f"    style: [{styles['red']}, {styles['blue']}]\n    style_weights: [0.7, 0.3]\n"
        "    alpha: 0.8\n    size: 96x64\n    record: door.mp4\n"
        "  - name: lobby\n    source: lavfi:testsrc2=size=64x48:rate=15\n"
        f"    style: {styles['green']}\n"
    )
    config = _serve_config(["--config", str(path)])
    door, lobby = config.streams
    assert (door.name, door.size, door.alpha, door.style_weights) == (
        "door",
        (64, 96),
        0.8,
        (0.7, 0.3),
    )
    assert config.control is None and lobby.styles == (styles["green"],)
    bad = {
        "streams:\n  - {name: a, source: x, style: s.png, colour: red}\n": "unknown key",
        "streams:\n  - {name: 'a b', source: x, style: s.png}\n": "stream name",
        "streams:\n  - {name: a, source: x, style: s.png}\n  - {name: a, source: y, style: s}\n": (
            "unique"
        ),
        "streams:\n  - {name: a, source: x, style: s.png, alpha: 2}\n": "alpha",
        "max_batch: 0\nstreams: []\n": "max_batch",
    }
    for text, message in bad.items():
        path.write_text(text)
        with pytest.raises(ServeConfigError, match=message):
            _serve_config(["--config", str(path)])
    # the one YAML loader: repeated keys and aliases are refused (before any value is used)
    from configkit.convert import ConfigError

    for text, message in {
        "bogus: 1\n": "unknown key 'bogus'",  # the file's own keys: checked by the one loader
        "max_batch: 2\nmax_batch: 3\n": "more than once",
        "streams:\n  - &a {name: a, source: x, style: s.png}\n  - *a\n": "aliases",
    }.items():
        path.write_text(text)
        with pytest.raises(ConfigError, match=message):
            _serve_config(["--config", str(path)])


def test_the_example_config_loads_and_names_existing_styles() -> None:
    root = Path(__file__).resolve().parents[3]
    config = _serve_config(["--config", str(root / "configs" / "serve.yaml")])
    assert [s.name for s in config.streams] == ["lobby", "mix"]
    for spec in config.streams:
        assert all((root / style).is_file() for style in spec.styles), spec.styles
    assert config.streams[1].size == (180, 320) and config.streams[1].style_weights == (0.7, 0.3)


def test_cli_settings_error_is_one_line_and_exit_2(tmp_path: Path, capsys) -> None:
    path = tmp_path / "serve.yaml"
    path.write_text("streams:\n  - {name: a, source: x, style: s.png, colour: red}\n")
    assert "colour" in main_error(["serve", "--config", str(path)], capsys)


def test_the_image_model_is_refused(styles: dict[str, str]) -> None:
    from adaattn_video.config import ModelConfig
    from adaattn_video.mixed_batch import PerFrameStyleError
    from adaattn_video.model import build_model
    from streamer.serve.server import StreamServer

    image_model = build_model(ModelConfig(variant="image", attention="softmax"))
    with pytest.raises(PerFrameStyleError, match="video model"):
        StreamServer(_config([], zmq=None), model=image_model)


# -- lavfi streams, control, isolation ---------------------------------------------------------
@pytest.mark.slow
def test_streams_styles_fairness_and_control_at_run_time(
    model, styles: dict[str, str], tmp_path: Path
) -> None:
    config = _config(
        [
            # "cam" is a prefix of "cam2": ZeroMQ would match both, the Subscriber must not.
            {"name": "cam", "source": "lavfi:testsrc2=size=64x48:rate=30", "style": styles["red"]},
            {
                "name": "cam2",
                "source": "lavfi:testsrc2=size=96x64:rate=5",
                "style": [styles["blue"]],
            },
            {"name": "broken", "source": "rtsp://127.0.0.1:9/none", "style": styles["red"]},
            {"name": "nostyle", "source": "lavfi:testsrc2", "style": str(tmp_path / "x.png")},
        ]
    )
    with serving(config, model) as info:
        control = info["control"]
        # A stream that cannot start is reported and skipped; the others run.
        assert info["streams"]["nostyle"] is not None and info["streams"]["cam"] is None
        with Subscriber(info["zmq"], stream="cam", receive_timeout_s=10) as sub:
            received = [sub.receive() for _ in range(10)]
        assert {(f.header.stream, f.header.style_id) for f in received} == {("cam", "red")}
        assert all(f.image.shape == (48, 64, 3) for f in received)

        # set-style / set-alpha apply to one stream only.
        send_command(
            control, {"command": "set-style", "stream": "cam", "styles": [styles["green"]]}
        )
        send_command(control, {"command": "set-alpha", "stream": "cam2", "alpha": 0.5})
        got = _frames_by_stream(info["zmq"], 2.0)
        assert {h["style_id"] for _, h in got["cam"][-5:]} == {"green"}
        assert {h["style_id"] for _, h in got["cam2"]} == {"blue"}
        assert all(h["stream"] == name for name in got for _, h in got[name])

        # Bad requests are refused with a reason and change nothing.
        refused = [
            ({"command": "set-alpha", "stream": "cam", "alpha": 2.0}, "alpha"),
            ({"command": "set-alpha", "stream": "nope", "alpha": 0.5}, "no stream named"),
            ({"command": "set-style", "stream": "cam", "styles": ["/no/such.png"]}, "such"),
            ({"command": "add-stream", "stream": {"name": "cam", "source": "lavfi:testsrc2",
                                                  "style": [styles["red"]]}}, "exists"),
            ({"command": "add-stream", "stream": {"name": "x", "source": "lavfi:testsrc2",
                                                  "style": ["/no/such.png"]}}, "such"),
            ({"command": "add-stream", "stream": {"name": "x", "source": "lavfi:testsrc2",
                                                  "style": ["relative.png"]}}, "relative"),
            ({"command": "launch"}, "unknown command"),
            # live's limits and guards apply to serve's requests too
            ({"command": "set-alpha", "stream": "cam", "alpha": float("nan")}, "finite"),
            ({"command": "set-style", "stream": "cam", "styles": [styles["red"]] * 17},
             "at most 16"),
            ({"command": "add-stream", "stream": {"name": "x", "source": "lavfi:testsrc2",
                                                  "style": [styles["red"]],
                                                  "record": styles["red"]}}, "overwrite the input"),
        ]  # fmt: skip
        before = send_command(control, {"command": "list-streams"})["streams"]
        for request, reason in refused:
            with pytest.raises(ControlError, match=reason):
                send_command(control, request)
        after = send_command(control, {"command": "list-streams"})["streams"]
        assert [s["name"] for s in after] == [s["name"] for s in before]
        status = send_command(control, {"command": "get-status"})
        by_name = {s["name"]: s for s in status["streams"]}
        assert by_name["cam"]["style_id"] == "green" and by_name["cam2"]["alpha"] == 0.5
        assert by_name["broken"]["state"] == "failed" and by_name["broken"]["error"]

        # Fairness: the 30 fps stream does not starve the 5 fps one (nearly every one of its
        # frames is published), and each stream's numbers are reported.
        cam2 = by_name["cam2"]
        assert cam2["frames_out"] >= 0.8 * cam2["frames_in"] - 1, cam2
        assert 3.0 <= cam2["fps_out"] <= 7.0, cam2
        assert by_name["cam"]["fps_out"] >= 10, by_name["cam"]
        assert cam2["latency_p50_ms"] is not None and cam2["latency_p95_ms"] is not None

        # add-stream at run time (recorded), then remove-stream: its threads end, the
        # recording is finalized and plays.
        record = tmp_path / "extra.mp4"
        reply = send_command(
            control,
            {
                "command": "add-stream",
                "stream": {
                    "name": "extra",
                    "source": "lavfi:testsrc2=size=64x48:rate=15",
                    "style": [styles["blue"]],
                    "record": str(record),
                    "size": "32x24",
                },
            },
        )
        assert reply["added"] == "extra"
        with Subscriber(info["zmq"], stream="extra", receive_timeout_s=10) as sub:
            frame = sub.receive()
        assert frame.header.style_id == "blue" and frame.image.shape == (24, 32, 3)
        time.sleep(1.5)
        reply = send_command(control, {"command": "remove-stream", "stream": "extra"})
        assert reply["threads_alive"] is False and reply["frames_out"] > 5
        assert not [t for t in threading.enumerate() if "serve-extra" in t.name]
        import av

        with av.open(str(record)) as container:
            decoded = sum(1 for _ in container.decode(video=0))
        assert decoded >= 5 and decoded <= reply["frames_out"]
        names = [s["name"] for s in send_command(control, {"command": "list-streams"})["streams"]]
        assert "extra" not in names and "cam" in names
    result: ServeResult = info["result"]
    assert result.status["total"]["frames_out"] > 0
    # After the run no thread of any stream is left.
    assert not [t for t in threading.enumerate() if t.name.startswith("serve-")]


# -- RTSP: topics and isolation during an outage ---------------------------------------------
def _rtsp_server():
    from helpers.rtsp_server import RtspServer

    try:
        return RtspServer(live="64x48@15").start()
    except RuntimeError as err:
        pytest.fail(f"RTSP test server unavailable: {err}")


@pytest.mark.slow
@pytest.mark.rtsp
def test_three_streams_topics_and_an_rtsp_outage_does_not_disturb_the_others(
    model, styles: dict[str, str]
) -> None:
    one, two = _rtsp_server(), _rtsp_server()
    try:
        network = {"read_timeout_s": 1.5, "open_timeout_s": 5, "give_up_after_s": 60}
        config = _config(
            [
                {"name": "one", "source": one.url("live"), "style": styles["red"], **network},
                {"name": "two", "source": two.url("live"), "style": styles["blue"], **network},
                {
                    "name": "pattern",
                    "source": "lavfi:testsrc2=size=64x48:rate=15",
                    "style": styles["green"],
                },
            ]
        )
        with serving(config, model) as info:
            endpoint = info["zmq"]
            # A plain SUB on one topic gets only that stream, with that stream's style.
            only_two = _frames_by_stream(endpoint, 3.0, topic=b"two")
            assert set(only_two) == {"two"} and len(only_two["two"]) >= 10
            assert {h["style_id"] for _, h in only_two["two"]} == {"blue"}
            assert {h["stream"] for _, h in only_two["two"]} == {"two"}

            # Kill server "one" for several seconds: the other two keep publishing.
            one.stop()
            killed_at = time.monotonic()
            during = _frames_by_stream(endpoint, 4.0)
            for name in ("two", "pattern"):
                times = [t for t, _ in during[name]]
                assert len(times) >= 0.6 * 15 * 4, (name, len(times))  # ~15 fps each
                gaps = np.diff([killed_at, *times])
                assert gaps.max() < 1.0, (name, gaps.max())  # no gap in the others
            assert len(during.get("one", [])) <= 3  # at most frames already in flight
            one.start()  # same port: the stream reconnects on its own
            _wait_for(
                lambda: len(_frames_by_stream(endpoint, 1.0, topic=b"one").get("one", [])) >= 5,
                30,
                "stream one to resume",
            )
            status = send_command(info["control"], {"command": "get-status"})
            by_name = {s["name"]: s for s in status["streams"]}
            assert by_name["one"]["reconnects"] >= 1 and by_name["one"]["outages"] >= 1
            assert by_name["two"]["reconnects"] == 0 and by_name["pattern"]["state"] == "running"
            counts = Counter(s["state"] for s in status["streams"])
            assert counts == {"running": 3}
    finally:
        one.stop()
        two.stop()
        for server in (one, two):
            server._close_pipes()


# -- the viewer: one stream, or a grid of all ----------------------------------------------------
@pytest.mark.slow
def test_view_shows_a_grid_of_all_streams_or_one_stream(model, styles: dict[str, str]) -> None:
    import urllib.request

    import cv2

    from streamer.zeromq.viewer import ViewerConfig, run_viewer

    config = _config(
        [
            {"name": "a", "source": "lavfi:testsrc2=size=64x48:rate=10", "style": styles["red"]},
            {"name": "b", "source": "lavfi:testsrc2=size=96x64:rate=10", "style": styles["blue"]},
        ],
        control=None,
    )

    def watch(stream: str | None) -> tuple[dict, dict[str, np.ndarray], dict]:
        ready, stop = threading.Event(), threading.Event()
        url: dict[str, str] = {}

        def on_ready(info: dict[str, Any]) -> None:
            url["base"] = info["url"]
            ready.set()

        viewer = ViewerConfig(endpoint, http="127.0.0.1:0", stream=stream)
        thread = threading.Thread(
            target=run_viewer, args=(viewer,), kwargs={"on_ready": on_ready, "stop_event": stop}
        )
        thread.start()
        try:
            assert ready.wait(10)

            def get(path: str) -> bytes:
                with urllib.request.urlopen(url["base"] + path, timeout=5) as reply:
                    return reply.read()

            def enough() -> bool:
                seen = json.loads(get("status.json"))
                return seen["frames"] >= 10 and len(seen["streams"]) == (1 if stream else 2)

            _wait_for(enough, 20, "frames of every stream")
            status = json.loads(get("status.json"))
            pictures = {}
            for name in status["streams"]:
                jpeg = np.frombuffer(get(f"frame/{name}.jpg"), np.uint8)
                pictures[name] = cv2.imdecode(jpeg, cv2.IMREAD_COLOR)
            page = get("").decode()
            return status, pictures, json.loads(get("streams.json")) | {"page": page}
        finally:
            stop.set()
            thread.join(10)

    with serving(config, model) as info:
        endpoint = info["zmq"]
        status, pictures, streams = watch(None)
        assert status["streams"] == ["a", "b"]
        assert pictures["a"].shape == (48, 64, 3) and pictures["b"].shape == (64, 96, 3)
        assert streams["a"]["header"]["style_id"] == "red"
        assert streams["b"]["header"]["style_id"] == "blue"
        assert 'id="grid"' in streams["page"]
        status, pictures, _ = watch("b")
        assert status["streams"] == ["b"] and status["header"]["stream"] == "b"


def test_serve_flags_for_the_common_case(styles: dict[str, str], tmp_path: Path) -> None:
    from streamer.cli.serve_commands import ServeUsageError

    config = _serve_config(
        ["--untrained", "--style", styles["red"], "--stream", "a=lavfi:testsrc2",
         "--stream", "b=rtsp://127.0.0.1:8554/live", "--size", "96x64", "--control", "none",
         "--seconds", "3"]
    )  # fmt: skip
    assert [(s.name, s.source, s.size) for s in config.streams] == [
        ("a", "lavfi:testsrc2", (64, 96)),
        ("b", "rtsp://127.0.0.1:8554/live", (64, 96)),
    ]
    assert config.stylizer.untrained and config.control is None and config.seconds == 3.0
    # --config YAML keys come after the defaults; flags override them.
    path = tmp_path / "serve.yaml"
    path.write_text("seconds: 9\nmax_batch: 2\nstreams:\n  - {name: y, source: x, style: a}\n")
    config = _serve_config(["--config", str(path), "--seconds", "4"])
    assert (config.seconds, config.max_batch, config.streams[0].name) == (4.0, 2, "y")
    with pytest.raises(ServeUsageError, match="NAME=SOURCE"):
        _serve_config(["--style", "s", "--stream", "a"])


@pytest.mark.slow
def test_control_command_line_for_serve(model, styles: dict[str, str], capsys) -> None:
    config = _config(
        [{"name": "a", "source": "lavfi:testsrc2=size=64x48:rate=10", "style": styles["red"]}]
    )
    with serving(config, model) as info:
        control = info["control"]

        def run(*argv: str) -> tuple[int, str, str]:
            code = main(["control", control, *argv])
            out, err = capsys.readouterr()
            return code, out, err

        code, out, _ = run("add-stream", "b", "lavfi:testsrc2=size=64x48:rate=10",
                           "--style", styles["blue"], "--alpha", "0.7",
                           "--set", "give_up_after_s=30")  # fmt: skip
        assert code == 0 and "stream b added (style blue)" in out
        code, out, _ = run("list-streams")
        listed = {s["name"]: s for s in json.loads(out)["streams"]}
        assert listed["b"]["alpha"] == 0.7 and listed["b"]["give_up_after_s"] == 30.0
        code, out, _ = run("set-style", "--stream", "b", styles["green"], styles["red"],
                           "--weights", "0.5", "0.5")  # fmt: skip
        assert code == 0 and "b: style set to green:0.50+red:0.50" in out
        code, out, _ = run("set-alpha", "--stream", "a", "0.25")
        assert code == 0 and "a: alpha set to 0.25" in out
        code, _, err = run("set-alpha", "0.5")  # a serve needs the stream's name
        assert code == 2 and err.count("\n") == 1 and "--stream NAME" in err
        code, out, _ = run("remove-stream", "b")
        assert code == 0 and "stream b removed" in out
        code, out, _ = run("status")
        status = json.loads(out)
        assert [s["name"] for s in status["streams"]] == ["a"]
        assert status["streams"][0]["alpha"] == 0.25


def test_scheduler_rounds_are_fair_and_group_frames_by_size(model, styles: dict[str, str]) -> None:
    """Deterministic rounds (no threads): a stream with a frame in every round cannot starve
    one that has a frame now and then, even with a single slot per round."""
    import torch

    from adaattn_video.settings import StylizerSpec
    from adaattn_video.stylizer import open_stylizer
    from streamer.regions.switch import RegionSwitch
    from streamer.serve.config import StreamSpec
    from streamer.serve.scheduler import Scheduler
    from streamer.serve.stream import StreamRuntime

    def runtime(name: str, style: str, size=None) -> StreamRuntime:
        spec = StreamSpec(name=name, source="lavfi:testsrc2", styles=(style,), size=size)
        stylizer_spec = StylizerSpec(
            styles=(style,), style_size=32, size=size, device="cpu", precision="fp32"
        )
        return StreamRuntime(spec, RegionSwitch(open_stylizer(stylizer_spec, model=model)), None)

    def frame(index: int, height: int = 24, width: int = 32) -> Frame:
        image = np.full((height, width, 3), index % 256, np.uint8)
        return Frame(index=index, image=image, capture_time_s=time.time())

    fast, slow = runtime("fast", styles["red"]), runtime("slow", styles["blue"])
    streams = [fast, slow]
    published: dict[str, list[Frame]] = defaultdict(list)

    def drain() -> None:  # what the writer threads do (not started here)
        for stream in streams:
            while (done := stream.outbox.get_nowait()) is not None:
                published[stream.name].append(done)

    scheduler = Scheduler(model, torch.device("cpu"), lambda: streams, max_batch=1)
    for round_index in range(30):
        fast.inbox.put(frame(round_index))  # a frame before every round: always ready
        if round_index % 5 == 0:
            slow.inbox.put(frame(round_index))
        scheduler.run_round()
        drain()
    assert len(published["slow"]) == 6  # every one of its frames was stylized
    assert len(published["fast"]) == 24  # the rest of the 30 single slots
    assert slow.inbox.dropped == 0
    # The older waiting frame of a stream is dropped (counted), never queued behind.
    assert fast.inbox.dropped == 6

    # Two sizes in one round: two model calls; frames of one size share one call; each frame
    # keeps its own stream's style label.
    third = runtime("third", styles["green"], size=(48, 64))
    streams.append(third)
    scheduler.max_batch = 8
    batches_before = scheduler.stats.batches
    published.clear()
    for stream in streams:
        stream.inbox.put(frame(100))
    assert scheduler.run_round() == 3
    drain()
    assert scheduler.stats.batches - batches_before == 2
    assert scheduler.stats.largest_batch == 2
    assert published["third"][0].image.shape == (48, 64, 3)
    assert published["fast"][0].image.shape == (24, 32, 3)
    labels = {name: frames[0].style_id for name, frames in published.items()}
    assert labels == {"fast": "red", "slow": "blue", "third": "green"}


@pytest.mark.slow
def test_sigterm_stops_every_stream_and_finalizes_recordings(
    styles: dict[str, str], tmp_path: Path
) -> None:
    """The real command in a subprocess: SIGTERM ends it with 143, recordings play."""
    import os
    import signal
    import subprocess
    import sys

    import av

    config = tmp_path / "serve.yaml"
    config.write_text(
        "untrained: true\ndevice: cpu\nprecision: fp32\nstyle_size: 32\n"
        "zmq: tcp://127.0.0.1:*\ncontrol: none\nstatus_interval_s: 1\nstreams:\n"
        f"  - {{name: a, source: 'lavfi:testsrc2=size=64x48:rate=10', style: {styles['red']},"
        f" record: {tmp_path / 'a.mp4'}}}\n"
        f"  - {{name: b, source: 'lavfi:testsrc2=size=64x48:rate=10', style: {styles['blue']},"
        f" record: {tmp_path / 'b.mp4'}}}\n"
    )
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-c", "import sys; from streamer.cli import main; sys.exit(main())",
         "serve", "--config", str(config)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        for line in proc.stdout:  # status lines: wait until both streams have published
            if line.startswith("serve ") and "a: in" in line and "b: in" in line:
                outs = [int(n) for n in re.findall(r"out (\d+)\.\d fps", line)[1:]]
                if len(outs) == 2 and min(outs) >= 1:
                    break
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 128 + signal.SIGTERM, err[-2000:]
    assert "interrupted" in out and "SIGTERM" in err
    for name in ("a", "b"):
        with av.open(str(tmp_path / f"{name}.mp4")) as container:
            assert sum(1 for _ in container.decode(video=0)) >= 3, name


def _serve_config(argv: list[str]):
    """The ServeConfig ``stylestream serve ARGV...`` would run with (nothing runs)."""
    return command_config(["serve", *argv]).serve
