"""serve refuses one stream, never the server: frames too big for ``--max-memory`` (known at
the stream's first frame) and a mask over the pixel limit fail that stream with the reason in
its status; the other streams keep publishing. Real lavfi sources, real ZeroMQ, the untrained
model."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from helpers.live_helpers import serving
from helpers.network import ANY_PORT
from PIL import Image

from streamer.serve.config import serve_config_from_mapping
from streamer.zeromq.control import send_command
from streamer.zeromq.subscriber import Subscriber

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _config(streams: list[dict[str, Any]], **overrides: Any):
    data: dict[str, Any] = dict(
        untrained=True, device="cpu", precision="fp32", style_size=32, zmq=ANY_PORT,
        control=ANY_PORT, status_interval_s=0, streams=streams,
    )  # fmt: skip
    data.update(overrides)
    return serve_config_from_mapping(data)


@pytest.fixture(scope="module")
def style(tmp_path_factory: pytest.TempPathFactory) -> str:
    path = tmp_path_factory.mktemp("style") / "red.png"
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(path)
    return str(path)


def bomb_mask(path: Path, side: int = 15000) -> str:
    """A PNG of a few hundred KB declaring side x side pixels (225 megapixels by default)."""
    Image.new("1", (side, side), 1).save(path)
    return str(path)


def _stream_state(control: str, name: str, timeout_s: float = 30.0) -> dict[str, Any]:
    end = time.monotonic() + timeout_s
    while True:
        reply = send_command(control, {"command": "list-streams"})
        item = next(s for s in reply["streams"] if s["name"] == name)
        if item["state"] not in ("starting", "running") or time.monotonic() > end:
            return item
        time.sleep(0.2)


def test_a_stream_too_big_for_the_memory_limit_is_refused_and_others_run(model, style) -> None:
    config = _config(
        [
            {"name": "small", "source": "lavfi:testsrc2=size=64x48:rate=15", "style": style},
            {"name": "huge", "source": "lavfi:testsrc2=size=1600x1600:rate=2", "style": style},
        ],
        max_memory="1G",
    )
    with serving(config, model) as info:
        huge = _stream_state(info["control"], "huge")
        assert huge["state"] == "failed" and "1600x1600" in huge["error"]
        assert "memory" in huge["error"]
        with Subscriber(info["zmq"], stream="small", receive_timeout_s=10) as sub:
            frames = [sub.receive() for _ in range(5)]
        assert all(f.image.shape == (48, 64, 3) for f in frames)
        small = send_command(info["control"], {"command": "list-streams"})["streams"]
        assert {s["name"]: s["state"] for s in small}["small"] == "running"


def test_a_mask_over_the_pixel_limit_refuses_its_stream_only(model, style, tmp_path) -> None:
    mask = bomb_mask(tmp_path / "bomb.png")
    config = _config(
        [
            {"name": "ok", "source": "lavfi:testsrc2=size=64x48:rate=15", "style": style},
            {"name": "masked", "source": "lavfi:testsrc2=size=64x48:rate=15", "style": style,
             "region": [{"style": style, "mask": mask}]},
        ]
    )  # fmt: skip
    with serving(config, model) as info:
        assert "megapixel" in info["streams"]["masked"] and info["streams"]["ok"] is None
        with Subscriber(info["zmq"], stream="ok", receive_timeout_s=10) as sub:
            assert sub.receive().image.shape == (48, 64, 3)
        # the same mask through set-regions is refused; the stream goes on
        with pytest.raises(Exception, match="megapixel"):
            send_command(
                info["control"],
                {"command": "set-regions", "stream": "ok",
                 "regions": [{"style": style, "mask": mask}]},
            )  # fmt: skip
        with Subscriber(info["zmq"], stream="ok", receive_timeout_s=10) as sub:
            assert sub.receive().image.shape == (48, 64, 3)
