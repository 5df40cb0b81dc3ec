"""The studio's guarantees beyond the page: stalled offers are closed and free their slot, no
ICE server unless configured, 4xx (never a traceback) for malformed requests, one line for bad
startup settings, 143 on SIGTERM, and no server path in any reply. Real aiohttp server, real
aiortc peers on loopback, the untrained model on tiny frames."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from typing import Any

import pytest
from helpers.cli import main_error
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from adaattn_video.settings import StylizerSpec
from streamer.studio.config import StudioConfig

pytest.importorskip("aiortc")
pytest.importorskip("aiohttp")

SIZE = (96, 160)


class Running:
    """run_studio in a thread; ``request`` sends one HTTP request and returns (code, JSON)."""

    def __init__(self, **options: Any) -> None:
        from streamer.studio.server import run_studio

        config = StudioConfig(
            port=0,
            stylizer=StylizerSpec(size=SIZE, untrained=True, device="cpu", style_size=64),
            **options,
        )
        ready, self.stop = threading.Event(), threading.Event()
        self.info: Any = None

        def on_ready(info: Any) -> None:
            self.info = info
            ready.set()

        self.thread = threading.Thread(
            target=run_studio, args=(config,),
            kwargs={"on_ready": on_ready, "stop_event": self.stop}, daemon=True,
        )  # fmt: skip
        self.thread.start()
        assert ready.wait(180), "the studio did not start"
        self.base = self.info.url.split("?")[0]

    def request(self, path: str, *, data: bytes | None = None, headers: dict | None = None,
                method: str | None = None) -> tuple[int, Any]:  # fmt: skip
        request = urllib.request.Request(
            self.base + path, data=data, headers=headers or {}, method=method
        )
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as err:
            body = err.read()
            return err.code, json.loads(body) if body.startswith(b"{") else body.decode()

    def close(self) -> None:
        self.stop.set()
        self.thread.join(60)
        assert not self.thread.is_alive()


async def _stalled_offer(studio: Running) -> tuple[int, Any, Any]:
    """A real aiortc offer with a video track, answered by the studio; the client then never
    applies the answer, so the connection never connects."""
    from aiortc import RTCConfiguration, RTCPeerConnection, VideoStreamTrack

    pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    pc.addTrack(VideoStreamTrack())
    await pc.setLocalDescription(await pc.createOffer())
    body = json.dumps({"sdp": pc.localDescription.sdp, "type": "offer"}).encode()
    loop = asyncio.get_running_loop()
    code, reply = await loop.run_in_executor(
        None, lambda: studio.request("api/offer", data=body,
                                     headers={"Content-Type": "application/json"}),
    )  # fmt: skip
    return code, reply, pc


def test_offers_that_never_connect_are_closed_and_free_their_slot(tmp_path) -> None:
    studio = Running(run_dir=str(tmp_path), max_connections=2, connect_timeout_s=1.5)

    async def scenario() -> None:
        peers = []
        for _ in range(2):
            code, reply, pc = await _stalled_offer(studio)
            assert code == 200 and reply["id"], reply
            peers.append(pc)
        code, reply, pc = await _stalled_offer(studio)
        peers.append(pc)
        assert code == 503 and "full" in reply["error"]
        deadline = time.monotonic() + 20
        while studio.request("api/status")[1]["connections"]:
            assert time.monotonic() < deadline, "stalled connections were never closed"
            await asyncio.sleep(0.2)
        code, reply, pc = await _stalled_offer(studio)  # the slots are free again
        peers.append(pc)
        assert code == 200, reply
        for pc in peers:
            await pc.close()

    try:
        asyncio.run(scenario())
        assert studio.request("api/status")[1]["closed_connections"] >= 2
    finally:
        studio.close()


@pytest.mark.parametrize(
    ("servers", "expected"),
    [(None, None), (["stun:stun.example.org:3478"], ("stun.example.org", 3478))],
)
def test_no_ice_server_unless_configured(tmp_path, servers, expected) -> None:
    from streamer.studio.config import ice_servers
    from streamer.studio.connection import Connection

    config = StudioConfig(
        stylizer=StylizerSpec(size=SIZE), run_dir=str(tmp_path), ice_server=tuple(servers or ())
    )

    async def gatherer_stun() -> Any:
        connection = Connection(
            "c1", None, style_path=tmp_path / "s.png", alpha=1.0, size=SIZE,  # type: ignore
            recordings_dir=tmp_path, ice_servers=ice_servers(config),
        )  # fmt: skip
        transceiver = connection.pc.addTransceiver("video")
        gatherer = transceiver.sender.transport.transport.iceGatherer
        await connection.pc.close()
        return gatherer._connection.stun_server  # aiortc's default would be Google's STUN

    assert asyncio.run(gatherer_stun()) == expected


def test_malformed_requests_are_4xx_without_a_traceback(tmp_path, caplog) -> None:
    studio = Running(run_dir=str(tmp_path), token="s3cret-token")
    token = {"X-Studio-Token": "s3cret-token"}
    try:
        with caplog.at_level(logging.DEBUG):
            # a non-ASCII token header (sent as raw UTF-8 bytes)
            code, reply = studio.request(
                "api/config", headers={"X-Studio-Token": "t\u00e9st-tokén"}
            )
            assert code == 403
            # not multipart
            code, reply = studio.request(
                "api/styles", data=b"{}", headers={**token, "Content-Type": "application/json"}
            )
            assert code == 400 and "multipart" in reply["error"]
            # multipart with broken part headers / boundary
            broken = b"--XX\r\nContent-Disposition: form-data; name\r\n\r\nzz\r\n--XX--\r\n"
            for content_type in ("multipart/form-data; boundary=XX", "multipart/form-data"):
                code, reply = studio.request(
                    "api/styles", data=broken, headers={**token, "Content-Type": content_type}
                )
                assert 400 <= code < 500 and reply["error"], reply
            # a file that is not a picture: the reply names no server path
            body = (b"--XX\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.png\""
                    b"\r\nContent-Type: image/png\r\n\r\nnot a picture\r\n--XX--\r\n")  # fmt: skip
            code, reply = studio.request(
                "api/styles", data=body,
                headers={**token, "Content-Type": "multipart/form-data; boundary=XX"},
            )  # fmt: skip
            assert code == 400 and "not a picture" in reply["error"]
            assert str(tmp_path) not in reply["error"] and ".part" not in reply["error"]
            assert "/" not in reply["error"].replace("a.png", "")
    finally:
        studio.close()
    assert not [r for r in caplog.records if r.exc_info], "a traceback was logged"


def test_startup_mistakes_are_one_line(tmp_path, capsys) -> None:
    (tmp_path / "file").write_text("x")
    line = main_error(["studio", "--untrained", "--run-dir", str(tmp_path / "file")], capsys)
    assert "is a file" in line
    (tmp_path / "c.pem").write_text("not a certificate")
    (tmp_path / "k.pem").write_text("not a key")
    argv = ["studio", "--untrained", "--https", "--cert", str(tmp_path / "c.pem")]
    line = main_error([*argv, "--key", str(tmp_path / "k.pem"), "--port", "0"], capsys)
    assert "PEM" in line
    for value in ("0", "-1", "nan"):
        line = main_error(["studio", "--untrained", "--connect-timeout-s", value], capsys)
        assert "connect_timeout_s" in line
    line = main_error(["studio", "--untrained", "--ice-server", "http://x"], capsys)
    assert "stun:" in line


def test_sigterm_ends_the_studio_with_143(tmp_path) -> None:
    env = {**os.environ, "PYTHONPATH": os.getcwd()}
    command = [sys.executable, "-c", "import sys; from streamer.cli import main; sys.exit(main())",
               "studio", "--untrained", "--port", "0",
               "--size", "160x96", "--device", "cpu", "--run-dir", str(tmp_path)]  # fmt: skip
    process = subprocess.Popen(command, env=env, stderr=subprocess.PIPE, text=True)
    try:
        assert process.stderr is not None
        for line in process.stderr:
            if "open http" in line:
                break
        process.send_signal(signal.SIGTERM)
        assert process.wait(60) == 143
    finally:
        if process.poll() is None:
            process.kill()


# -- request bodies (property) -----------------------------------------------------------------
_json_values = st.recursive(
    st.one_of(
        st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), st.text(max_size=20)
    ),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=6,
)
_bodies = st.one_of(
    _json_values.map(lambda v: json.dumps(v).encode()),
    st.dictionaries(
        st.sampled_from(["sdp", "type", "style", "alpha", "styles", "weights", "on"]),
        _json_values,
        max_size=4,
    ).map(lambda v: json.dumps(v).encode()),
    st.binary(max_size=40),
)


@pytest.fixture(scope="module")
def running(tmp_path_factory: pytest.TempPathFactory):
    studio = Running(run_dir=str(tmp_path_factory.mktemp("run")))
    yield studio
    studio.close()


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    st.sampled_from(["api/offer", "api/connections/c0000000/style",
                     "api/connections/c0000000/alpha", "api/connections/c0000000/record"]),
    _bodies,
)  # fmt: skip
def test_any_request_body_is_answered_without_a_server_error(running, route, body) -> None:
    code, reply = running.request(route, data=body, headers={"Content-Type": "application/json"})
    assert code < 500, (code, reply)
    if code >= 400:
        assert isinstance(reply, dict) and reply["error"] and "\n" not in reply["error"]
