"""``serve`` with regions: a stream with ``region:`` next to one without (both publish; the
regions stream's frames show the split), ``set-regions`` / ``clear-regions`` on a stream over the
real control endpoint, and the config checks. A static lavfi source (SMPTE bars), so every
received frame can be compared with the same picture stylized offline; the real untrained model
on tiny frames, real ZeroMQ on loopback."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from helpers.live_helpers import serving
from helpers.media import write_contrast_styles
from helpers.network import ANY_PORT

from adaattn_video.stylizer import FrameStylizer, StylizerConfig
from streamer.cli import main
from streamer.serve.config import ServeConfigError, serve_config_from_mapping
from streamer.sources import open_source
from streamer.zeromq.control import ControlError, send_command
from streamer.zeromq.subscriber import Subscriber

pytestmark = pytest.mark.usefixtures("one_torch_thread")

HEIGHT, WIDTH = 48, 96
SOURCE = f"lavfi:smptebars=size={WIDTH}x{HEIGHT}:rate=10"
KEYED = "warm|regions:cold"


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, str]:
    """Two very different small styles (warm stripes, cold noise) and a left-half mask."""
    return write_contrast_styles(tmp_path_factory.mktemp("regions"), (HEIGHT, WIDTH))


def _config(streams: list[dict[str, Any]]):
    return serve_config_from_mapping(
        dict(untrained=True, device="cpu", precision="fp32", style_size=32, zmq=ANY_PORT,
             control=ANY_PORT, status_interval_s=0, encoding="rgb24", streams=streams)
    )  # fmt: skip


def _bars() -> np.ndarray:
    with open_source(SOURCE) as source:
        return next(iter(source)).image


def _receive(endpoint: str, stream: str, count: int, after: float = 0.0) -> list:
    """``count`` frames of ``stream`` captured after ``after`` (time.time())."""
    frames: list = []
    with Subscriber(endpoint, stream=stream, receive_timeout_s=20) as sub:
        while len(frames) < count:
            frame = sub.receive()
            if frame.header.capture_time > after:
                frames.append(frame)
    return frames


def assert_split(frame: np.ndarray, left: np.ndarray, right: np.ndarray) -> None:
    """The left quarter looks like ``left``, the right quarter like ``right`` (and not like
    the other one); the middle is within the decoder's reach of the mask edge."""
    frame = frame.astype(float)
    for part, match, other in ((slice(0, 24), left, right), (slice(72, WIDTH), right, left)):
        near = np.abs(frame[:, part] - match[:, part].astype(float)).mean()
        far = np.abs(frame[:, part] - other[:, part].astype(float)).mean()
        assert near < 3 and far > 3 * near, (near, far)


@pytest.mark.slow
def test_a_stream_with_regions_next_to_one_without_and_set_regions_at_run_time(
    model, files: dict[str, str], capsys
) -> None:
    region = f"style={files['cold']},mask={files['left']}"
    config = _config(
        [
            {"name": "plain", "source": SOURCE, "style": files["warm"]},
            {"name": "split", "source": SOURCE, "style": files["warm"], "region": [region]},
        ]
    )
    bars = _bars()
    reference = StylizerConfig(device="cpu", style_size=32)
    warm, cold = FrameStylizer(model, reference), FrameStylizer(model, reference)
    warm.set_style(files["warm"])
    cold.set_style(files["cold"])
    warm_bars, cold_bars = warm(bars), cold(bars)
    with serving(config, model) as info:
        control, zmq = info["control"], info["zmq"]
        assert info["streams"] == {"plain": None, "split": None}
        # both publish; the plain stream (batched) is warm everywhere, the regions stream
        # (its own model call) cold where the mask is white and warm elsewhere
        for frame in _receive(zmq, "plain", 3):
            assert frame.header.style_id == "warm"
            assert np.abs(frame.image.astype(int) - warm_bars.astype(int)).max() <= 2
        for frame in _receive(zmq, "split", 3):
            assert frame.header.style_id == KEYED
            assert_split(frame.image, cold_bars, warm_bars)
        listed = {s["name"]: s for s in send_command(control, {"command": "list-streams"})
                  ["streams"]}  # fmt: skip
        assert listed["split"]["region"] == [{"style": files["cold"], "mask": files["left"]}]
        assert listed["plain"]["region"] == []
        status = {s["name"]: s for s in send_command(control, {"command": "get-status"})
                  ["streams"]}  # fmt: skip
        assert status["split"]["regions"] == listed["split"]["region"]

        # set-regions on the plain stream (command line, --stream): cold on the right half
        code = main(["control", control, "set-regions", "--stream", "plain", "--region",
                     f"style={files['cold']},mask={files['left']},invert=1"])  # fmt: skip
        out = capsys.readouterr().out
        assert code == 0 and f"plain: regions set to cold (style id {KEYED})" in out, out
        switched = time.time()
        for frame in _receive(zmq, "plain", 3, after=switched):
            assert frame.header.style_id == KEYED
            assert_split(frame.image, warm_bars, cold_bars)

        # refused requests change nothing
        before = send_command(control, {"command": "list-streams"})["streams"]
        refused = [
            ({"command": "set-regions", "stream": "nope",
              "regions": [{"style": files["cold"], "key": "green"}]}, "no stream named"),
            ({"command": "set-regions", "stream": "split",
              "regions": [{"style": files["cold"], "mask": "/no/such.png"}]}, "such.png"),
            ({"command": "set-regions", "stream": "split",
              "regions": [{"style": files["cold"], "mask": "/clip.mp4"}]}, "sequence"),
            ({"command": "set-regions", "stream": "split",
              "regions": [{"style": files["cold"], "key": "green"}] * 17}, "at most 16"),
            ({"command": "set-regions", "regions": [{"style": files["cold"], "key": "green"}]},
             "name the stream"),
            ({"command": "add-stream", "stream": {"name": "x", "source": SOURCE,
                                                  "style": files["warm"],
                                                  "region": ["style=cold.png,key=green"]}},
             "relative"),
        ]  # fmt: skip
        for request, reason in refused:
            with pytest.raises(ControlError, match=reason):
                send_command(control, request)
        assert send_command(control, {"command": "list-streams"})["streams"] == before

        # clear-regions: back to the shared batch, warm everywhere
        reply = send_command(control, {"command": "clear-regions", "stream": "split"})
        assert reply["stream"] == "split" and reply["regions"] == []
        cleared = time.time()
        for frame in _receive(zmq, "split", 3, after=cleared):
            assert frame.header.style_id == "warm"
            assert np.abs(frame.image.astype(int) - warm_bars.astype(int)).max() <= 2

        # add-stream with a region over the command line
        code = main(["control", control, "add-stream", "third", SOURCE, "--style",
                     files["warm"], "--region", f"style={files['cold']},mask={files['left']}",
                     "--uncovered", "content"])  # fmt: skip
        assert code == 0, capsys.readouterr()
        capsys.readouterr()
        main(["control", control, "list-streams"])
        third = {s["name"]: s for s in json.loads(capsys.readouterr().out)["streams"]}["third"]
        assert third["uncovered"] == "content" and len(third["region"]) == 1
        frame = _receive(zmq, "third", 1)[0]
        assert frame.header.style_id == KEYED
    totals = info["result"].status["total"]
    assert totals["failed_batches"] == 0 and totals["frames_out"] > 0


def test_serve_region_settings_are_checked(files: dict[str, str], tmp_path: Path) -> None:
    entry = {"name": "a", "source": SOURCE, "style": files["warm"]}
    config = _config([{**entry, "region": [{"style": files["cold"], "key": "green"}],
                       "uncovered": "content"}])  # fmt: skip
    (spec,) = config.streams
    assert spec.regions() is not None and spec.regions().uncovered == "content"
    for region, reason in (
        ([f"style={files['cold']},mask={tmp_path / 'clip.mp4'}"], "sequence"),
        (["style=a.png"], "exactly one of mask=FILE"),
        ([{"style": files["cold"], "key": "green", "colour": 1}], "unknown key"),
    ):
        with pytest.raises(ServeConfigError, match=reason):
            _config([{**entry, "region": region}])
    with pytest.raises(ServeConfigError, match="uncovered"):
        _config([{**entry, "uncovered": "nothing"}])
