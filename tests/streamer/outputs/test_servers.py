"""Every output kind against a REAL server or receiver on loopback, read back independently:
nginx-rtmp + PyAV, GStreamer's RTSP server in RECORD mode, srt-live-transmit as the listener,
an in-process NDI receiver, hls.js in Debian's chromium. Frames carry frame-counter markers
(:mod:`streamer.studio.markers`), so "the right frames, in order" is checked, not just "some"."""

from __future__ import annotations

import shutil
import threading
import time
from fractions import Fraction
from pathlib import Path

import pytest
from helpers.output_readers import StreamReader, feed, feed_in_background, read_file_frames
from helpers.rtmp_server import RtmpServer
from helpers.rtsp_record_server import RtspRecordServer
from helpers.srt_listener import SrtListener

from streamer.frames import SourceInfo
from streamer.outputs.base import OutputOptions
from streamer.outputs.fanout import OutputSet, build_output

pytestmark = pytest.mark.slow
INFO = SourceInfo(frame_rate=Fraction(30))
QUICK = OutputOptions(backoff_initial_s=0.2, backoff_max_s=1.0)


def markers(frames) -> list[int]:
    return [f.marker for f in frames if f.marker is not None]


def test_rtmp_frames_reach_a_player_through_nginx() -> None:
    with RtmpServer() as server:
        output = build_output(server.url("s3cretkey"), info=INFO)
        feed(output, 10)  # publishing before the player joins
        reader = StreamReader(server.url("s3cretkey")).start()
        feed(output, 60, start=10)
        assert reader.wait(30, 10), reader.errors
        reader.stop()
        output.close()
    got = markers(reader.frames)
    assert {(f.width, f.height) for f in reader.frames} == {(320, 240)}
    assert got == sorted(got) and len(set(got)) == len(got)
    assert got[-1] >= 60 and len(got) >= 30
    status = output.status()
    assert status.frames + status.drops == 70 and status.drops <= 5  # only while connecting
    assert status.state == "closed" and status.reconnects == 0


def test_rtmp_resumes_after_a_server_restart_while_hls_never_stops(tmp_path: Path) -> None:
    hls_dir = tmp_path / "hls"
    with RtmpServer() as server:
        outputs = OutputSet.from_urls(
            [server.url("k1"), f"hls:{hls_dir}"], info=INFO, options=QUICK
        )
        rtmp, hls = outputs.outputs
        seen: list[int] = []

        def watch(i: int) -> None:
            playlist = hls_dir / "index.m3u8"
            if playlist.exists():
                seen.append(len(list(hls_dir.glob("*.ts"))))
            if i == 45:
                server.stop()
            if i == 75:
                server.start()

        feed(outputs, 45)
        reader = StreamReader(server.url("k1")).start()
        feed(outputs, 135, start=45, on_frame=watch)
        assert reader.wait(1, 5)
        reader.stop()
        outputs.close()
    status = rtmp.status()
    assert status.reconnects == 1 and status.state == "closed"
    assert 0 < status.drops < 60  # frames of the outage only
    assert status.frames + status.drops == 180
    got = markers(reader.frames)
    assert got and got[-1] >= 150  # the player got frames after the restart
    assert any(m > 80 for m in got)
    hls_status = hls.status()
    assert hls_status.frames + hls_status.drops == 180 and hls_status.drops <= 3
    assert hls_status.reconnects == 0 and hls_status.error is None
    assert max(seen) >= 2  # segments kept appearing during the RTMP outage


def test_rtsp_publish_is_recorded_by_a_record_mode_server(tmp_path: Path) -> None:
    out = tmp_path / "recorded.ts"
    with RtspRecordServer(out) as server:
        output = build_output(server.url(), info=INFO)
        feed(output, 60)
        output.close()
        time.sleep(0.5)
    assert output.status().frames >= 55 and output.status().reconnects == 0
    frames = read_file_frames(str(out))
    got = markers(frames)
    assert {(f.width, f.height) for f in frames} == {(320, 240)}
    assert len(got) >= 50 and got == sorted(got)


def test_srt_output_reaches_an_srt_listener(tmp_path: Path) -> None:
    out = tmp_path / "srt.ts"
    with SrtListener(out) as listener:
        output = build_output(listener.url(), info=INFO)
        feed(output, 60)
        output.close()
        time.sleep(0.5)
    assert output.status().frames >= 55
    frames = read_file_frames(str(out))
    got = markers(frames)
    assert {(f.width, f.height) for f in frames} == {(320, 240)}
    assert len(got) >= 50 and got == sorted(got)


def test_srt_reconnects_when_the_listener_comes_late(tmp_path: Path) -> None:
    out = tmp_path / "late.ts"
    listener = SrtListener(out)
    output = build_output(listener.url(), info=INFO, options=QUICK)
    feed(output, 150)  # nobody listens: srt-live-transmit gives up and exits; backing off
    assert output.status().error is not None
    with listener:
        feed(output, 120, start=150)
        output.close()
        time.sleep(0.3)
    got = markers(read_file_frames(str(out)))
    assert got and got[-1] >= 250 and output.status().reconnects >= 1


def test_ndi_source_is_received_in_process() -> None:
    ndi = pytest.importorskip("NDIlib")
    assert ndi.initialize()
    output = build_output("ndi:stylestream-test", info=INFO)
    finder = ndi.find_create_v2(ndi.FindCreate(p_extra_ips="127.0.0.1"))
    stop_feeding = feed_in_background(output)
    received: list[tuple[int, int]] = []
    try:
        source = None
        deadline = time.monotonic() + 15
        while source is None and time.monotonic() < deadline:
            ndi.find_wait_for_sources(finder, 1000)
            source = next(
                (
                    s
                    for s in ndi.find_get_current_sources(finder)
                    if "stylestream-test" in s.ndi_name
                ),
                None,
            )
        assert source is not None, "the NDI source was not found"
        create = ndi.RecvCreateV3()
        create.color_format = ndi.RECV_COLOR_FORMAT_RGBX_RGBA
        receiver = ndi.recv_create_v3(create)
        ndi.recv_connect(receiver, source)
        while len(received) < 10 and time.monotonic() < deadline:
            kind, video, _, _ = ndi.recv_capture_v2(receiver, 1000)
            if kind == ndi.FRAME_TYPE_VIDEO:
                received.append((video.xres, video.yres))
                ndi.recv_free_video_v2(receiver, video)
        ndi.recv_destroy(receiver)
    finally:
        stop_feeding()
        ndi.find_destroy(finder)
        output.close()
    assert len(received) >= 10 and set(received) == {(320, 240)}


@pytest.mark.browser
def test_hls_plays_in_chromium_with_hls_js(tmp_path: Path) -> None:
    playwright = pytest.importorskip("playwright.sync_api")
    chromium = shutil.which("chromium")
    if chromium is None:
        pytest.skip("Debian's chromium is not installed")
    import http.server
    import socketserver

    from streamer.outputs import pages

    hls_dir = tmp_path / "hls"
    output = build_output(f"hls:{hls_dir}", info=INFO)

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            try:
                if self.path == "/":
                    body, kind = pages.hls_player_page("/hls/index.m3u8")
                elif self.path.startswith("/vendor/"):
                    body, kind = pages.vendor_asset(self.path.rsplit("/", 1)[1])
                else:
                    body, kind = pages.hls_file(hls_dir, self.path.rsplit("/", 1)[1])
            except FileNotFoundError:
                self.send_error(404)
                return
            self.send_response(200)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    httpd = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    stop_feeding = feed_in_background(output)
    console: list[str] = []
    try:
        deadline = time.monotonic() + 20
        while not (hls_dir / "index.m3u8").exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        with playwright.sync_playwright() as p:
            browser = p.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
            page = browser.new_page()
            page.on("console", lambda m: console.append(m.text))
            page.goto(f"http://127.0.0.1:{httpd.server_address[1]}/")
            try:
                page.wait_for_function("window.stylestreamFrames > 20", timeout=30000)
            except playwright.Error as err:
                status = page.evaluate("document.getElementById('status').textContent")
                raise AssertionError(f"{status} {console[-5:]}") from err
            size = page.evaluate(
                "[document.getElementById('video').videoWidth, "
                "document.getElementById('video').videoHeight]"
            )
            browser.close()
    finally:
        stop_feeding()
        output.close()
        httpd.shutdown()
    assert size == [320, 240]
    assert not list(hls_dir.glob("*.tmp"))
