"""The output runtime without servers: non-blocking writes, drops, reconnects, states, fan-out,
preflight messages, the virtual camera through a capture backend, the pages."""

from __future__ import annotations

import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from helpers.output_readers import feed, marker_frame

from configkit.errors import StylestreamError
from streamer.frames import Frame
from streamer.outputs import devices, network, pages
from streamer.outputs.base import Output, OutputOptions, OutputState
from streamer.outputs.fanout import OutputSet, build_output
from streamer.outputs.spec import OutputUrlError, parse_output

FAST = OutputOptions(backoff_initial_s=0.05, backoff_max_s=0.2, close_timeout_s=5)


class FakeConnection:
    def __init__(self, owner: FakeOutput) -> None:
        self.owner = owner

    def send(self, frame: Frame) -> None:
        if self.owner.fail_sends.is_set():
            raise BrokenPipeError("Broken pipe: 'rtmp://h/app/supersecret'")
        time.sleep(self.owner.send_s)
        self.owner.sent.append(frame.index)

    def close(self) -> None:
        self.owner.closed += 1


class FakeOutput(Output):
    """Connects unless ``refuse`` is set; sends take ``send_s``."""

    def __init__(self, url: str = "rtmp://h/app/supersecret", send_s: float = 0.0) -> None:
        super().__init__(parse_output(url), FAST)
        self.send_s = send_s
        self.sent: list[int] = []
        self.connects = 0
        self.closed = 0
        self.refuse = threading.Event()
        self.fail_sends = threading.Event()

    def _connect(self, frame: Frame) -> FakeConnection:
        self.connects += 1
        if self.refuse.is_set():
            raise ConnectionRefusedError("refused")
        return FakeConnection(self)


def wait_for(condition, timeout_s: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.01)
    return condition()


def test_a_slow_output_never_blocks_the_writer_and_counts_its_drops() -> None:
    output = FakeOutput(send_s=0.2)
    longest = feed(output, 30, fps=60)
    output.close()
    status = output.status()
    assert longest < 0.05
    assert status.frames == len(output.sent) < 30
    assert status.frames + status.drops == 30
    assert output.sent[-1] == 29  # the newest frame wins
    assert status.state == "closed" and output.closed == 1


def test_a_lost_connection_reconnects_with_backoff_and_reports_states(
    caplog: pytest.LogCaptureFixture,
) -> None:
    output = FakeOutput()
    feed(output, 5, fps=100)
    assert wait_for(lambda: output.state is OutputState.RUNNING)
    output.fail_sends.set()
    output.refuse.set()
    feed(output, 20, fps=100, start=5)
    assert wait_for(lambda: output.state is OutputState.RECONNECTING)
    status = output.status()
    assert status.error == "ConnectionRefusedError: refused"
    assert "Broken pipe" in caplog.text and "rtmp://h/app/***" in caplog.text
    assert "supersecret" not in caplog.text + status.output
    output.fail_sends.clear()
    output.refuse.clear()
    feed(output, 30, fps=100, start=25)
    output.close()
    status = output.status()
    assert status.reconnects == 1
    assert output.sent[-1] == 54
    assert status.frames + status.drops == 55
    assert output.connects >= 3  # refused attempts in between


def test_give_up_fails_the_output() -> None:
    output = FakeOutput()
    output.options = OutputOptions(backoff_initial_s=0.01, backoff_max_s=0.01, give_up_after_s=0.1)
    output.refuse.set()
    feed(output, 30, fps=100)
    assert wait_for(lambda: output.state is OutputState.FAILED)
    output.close()
    assert output.status().state == "failed" and output.status().frames == 0


def test_a_local_output_fails_instead_of_reconnecting(tmp_path: Path) -> None:
    output = FakeOutput(url=f"hls:{tmp_path}")
    output.fail_sends.set()
    feed(output, 5, fps=100)
    assert wait_for(lambda: output.state is OutputState.FAILED)
    output.close()
    assert output.connects == 1


def test_an_output_set_is_not_held_up_by_a_slow_member() -> None:
    slow, fast = FakeOutput(send_s=0.5), FakeOutput(url="rtmp://h/app/other")
    outputs = OutputSet([slow, fast])
    longest = feed(outputs, 40, fps=50)
    outputs.close()
    assert longest < 0.05
    assert len(fast.sent) == 40 and fast.status().drops == 0
    assert len(slow.sent) < 10
    assert [s["state"] for s in outputs.status_dicts()] == ["closed", "closed"]


def test_from_urls_checks_every_url_before_starting_any(tmp_path: Path) -> None:
    with pytest.raises(OutputUrlError, match="1-65535"):
        OutputSet.from_urls([f"hls:{tmp_path / 'a'}", "rtmp://h:0/app/k"])
    assert not (tmp_path / "a").exists()  # nothing was created
    with pytest.raises(OutputUrlError, match="given twice"):
        OutputSet.from_urls(["rtmp://h/app/k", "rtmp://h/app/k"])


def test_missing_program_and_extras_are_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(network.shutil, "which", lambda name: None)
    with pytest.raises(StylestreamError, match="apt-get install srt-tools"):
        build_output("srt://127.0.0.1:9000")
    monkeypatch.setitem(sys.modules, "NDIlib", None)
    with pytest.raises(StylestreamError, match=r"pip install -e '\.\[ndi\]'"):
        build_output("ndi:cam")
    monkeypatch.setitem(sys.modules, "pyvirtualcam", None)
    with pytest.raises(StylestreamError, match=r"pip install -e '\.\[virtualcam\]'"):
        build_output("virtualcam")


def test_no_loopback_device_says_how_to_create_one(monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("pyvirtualcam")
    monkeypatch.setattr(devices, "loopback_devices", lambda: [])
    with pytest.raises(StylestreamError, match="modprobe v4l2loopback devices=1 exclusive_caps=1"):
        build_output("virtualcam")


@pytest.mark.parametrize("fmt", ["RGB", "BGR", "I420", "NV12"])
def test_virtual_camera_frames_through_a_capture_backend(fmt: str) -> None:
    pyvirtualcam = pytest.importorskip("pyvirtualcam")
    from pyvirtualcam.util import encode_fourcc

    captured: list[tuple[int, int, int, np.ndarray]] = []

    class Capture:
        def __init__(self, *, width, height, fps, fourcc, device, **kw):
            self.size, self.fourcc = (width, height), fourcc

        def send(self, frame: np.ndarray) -> None:
            captured.append((*self.size, self.fourcc, frame.copy()))

        def close(self) -> None:
            pass

        def device(self) -> str:
            return "capture"

        def native_fourcc(self):
            return None

    pyvirtualcam.register_backend("stylestream-test", Capture)
    output = build_output(
        "virtualcam", settings=devices.VirtualcamSettings(fmt, backend="stylestream-test")
    )
    feed(output, 6, fps=100, width=160, height=96)
    output.close()
    assert output.status().frames == len(captured) >= 1
    width, height, fourcc, data = captured[-1]
    assert (width, height) == (160, 96)
    assert fourcc == encode_fourcc(getattr(pyvirtualcam.PixelFormat, fmt).value)
    expected = 160 * 96 * 3 if fmt in ("RGB", "BGR") else 160 * 96 * 3 // 2
    assert data.size == expected
    source = marker_frame(5, 160, 96).image
    if fmt == "RGB":
        assert np.array_equal(data.reshape(96, 160, 3), source)
    elif fmt == "BGR":
        assert np.array_equal(data.reshape(96, 160, 3)[..., ::-1], source)
    else:  # luma of the last frame is close to BT.601 Y of the source
        luma = data[: 160 * 96].reshape(96, 160).astype(float)
        y = source @ np.array([0.257, 0.504, 0.098]) + 16
        assert np.abs(luma - y).mean() < 2.0


@pytest.mark.skipif(not list(Path("/dev").glob("video*")), reason="no /dev/video* device here")
def test_virtual_camera_on_a_real_loopback_device() -> None:
    pytest.importorskip("pyvirtualcam")
    if not devices.loopback_devices():
        pytest.skip("no v4l2loopback device")
    output = build_output("virtualcam")
    feed(output, 10, fps=30, width=160, height=96)
    output.close()
    assert output.status().frames >= 1 and output.status().state == "closed"


def test_pages_escape_their_source_and_serve_hls_js(tmp_path: Path) -> None:
    body, kind = pages.browser_source_page('/hls/a/index.m3u8"><script>x</script>')
    text = body.decode()
    assert kind.startswith("text/html") and "<script>x</script>" not in text
    assert "background: transparent" in text and "controls" not in text.split("<body>")[1]
    js, js_kind = pages.vendor_asset("hls.min.js")
    assert js_kind.startswith("text/javascript") and len(js) > 100_000
    (tmp_path / "index.m3u8").write_text("#EXTM3U\n")
    assert pages.hls_file(tmp_path, "index.m3u8")[1] == "application/vnd.apple.mpegurl"
    for bad in ("../index.m3u8", "x.py", ".hidden.ts", "missing.ts"):
        with pytest.raises(FileNotFoundError):
            pages.hls_file(tmp_path, bad)
    assert b"/hls/a/index.m3u8" in pages.hls_player_page("/hls/a/index.m3u8")[0]
