"""The outputs' pages in ``stylestream view``: the bare browser-source page (``/source``,
``/source/NAME``), an HLS output's player and files (``--hls NAME=DIR``: ``/hls/NAME/...``) and
the shipped hls.js, over real HTTP from a running viewer with a real publisher and a real HLS
output; the HLS source page plays in Debian's chromium."""

from __future__ import annotations

import http.client
import queue
import shutil
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers.cli import main_error
from helpers.media import pattern_frame
from helpers.network import ANY_PORT
from helpers.output_readers import feed_in_background

from streamer.frames import Frame
from streamer.outputs import OutputUrlError, build_output
from streamer.zeromq.publisher import ZmqSink, ZmqSinkConfig
from streamer.zeromq.viewer import ViewerConfig, run_viewer


@pytest.fixture
def hls_dir(tmp_path: Path) -> Iterator[Path]:
    """An HLS output being fed 320x240 marker frames at 30 fps."""
    folder = tmp_path / "cam"
    output = build_output(f"hls:{folder}")
    stop = feed_in_background(output)
    deadline = time.monotonic() + 20
    while not list(folder.glob("*.ts")) and time.monotonic() < deadline:
        time.sleep(0.1)
    yield folder
    stop()
    output.close()


@pytest.fixture
def viewer_url(hls_dir: Path) -> Iterator[str]:
    """A viewer of a real publisher (64x64 frames), serving ``hls_dir`` as ``cam``."""
    sink = ZmqSink(ZmqSinkConfig(ANY_PORT))
    stop, ready = threading.Event(), queue.Queue()

    def publish() -> None:
        index = 0
        while not stop.is_set():
            sink.publish(Frame(index, pattern_frame(index, 64, 64), capture_time_s=time.time()))
            index += 1
            time.sleep(0.05)

    config = ViewerConfig(sink.endpoint, http="127.0.0.1:0", hls=(f"cam={hls_dir}",))
    threads = [
        threading.Thread(target=publish, daemon=True),
        threading.Thread(
            target=lambda: run_viewer(config, on_ready=ready.put, stop_event=stop), daemon=True
        ),
    ]
    for thread in threads:
        thread.start()
    try:
        yield ready.get(timeout=20)["url"]
    finally:
        stop.set()
        for thread in threads:
            thread.join(10)
        sink.close()


def _get(url: str, path: str) -> tuple[int, str, bytes]:
    host, port = url.removeprefix("http://").rstrip("/").split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=10)
    try:
        connection.request("GET", path)
        response = connection.getresponse()
        return response.status, response.getheader("Content-Type", ""), response.read()
    finally:
        connection.close()


def test_view_serves_the_bare_pages_the_hls_files_and_hls_js(viewer_url: str) -> None:
    code, kind, body = _get(viewer_url, "/source")
    assert code == 200 and kind.startswith("text/html") and b'data-src="/stream.mjpg"' in body
    assert b"background: transparent" in body
    assert b'data-src="/hls/cam/index.m3u8"' in _get(viewer_url, "/source/cam")[2]
    assert b'data-src="/stream/door.mjpg"' in _get(viewer_url, "/source/door")[2]  # serve
    code, kind, body = _get(viewer_url, "/hls/cam/")
    assert code == 200 and b"/hls/cam/index.m3u8" in body and b"/vendor/hls.min.js" in body
    code, kind, playlist = _get(viewer_url, "/hls/cam/index.m3u8")
    assert code == 200 and kind == "application/vnd.apple.mpegurl"
    segment = next(line for line in playlist.decode().splitlines() if line.endswith(".ts"))
    code, kind, data = _get(viewer_url, f"/hls/cam/{segment}")
    assert code == 200 and kind == "video/mp2t" and data[0] == 0x47  # MPEG-TS sync byte
    code, kind, js = _get(viewer_url, "/vendor/hls.min.js")
    assert code == 200 and kind.startswith("text/javascript") and len(js) > 100_000
    for missing in ("/hls/nope/", "/hls/cam/../cam/index.m3u8", "/hls/cam/x.txt",
                    "/source/bad%20name", "/vendor/../index.html"):  # fmt: skip
        assert _get(viewer_url, missing)[0] == 404, missing
    assert b'"hls": ["cam"]' in _get(viewer_url, "/status.json")[2]


def test_bad_hls_folders_are_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(OutputUrlError, match="unique NAME=DIR"):
        ViewerConfig("tcp://127.0.0.1:5555", hls=(f"a={tmp_path}", f"a={tmp_path / 'b'}"))
    line = main_error(["view", "--hls", str(tmp_path / "no" / "such" / "dir")], capsys)
    assert "does not exist" in line


@pytest.mark.browser
@pytest.mark.slow
def test_the_source_page_plays_the_hls_output_in_chromium(viewer_url: str) -> None:
    playwright = pytest.importorskip("playwright.sync_api")
    chromium = shutil.which("chromium")
    if chromium is None:
        pytest.skip("Debian's chromium is not installed")
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 640, "height": 360})
        page.goto(f"{viewer_url}source/cam")
        page.wait_for_function("window.stylestreamVideo && stylestreamVideo.currentTime > 1")
        size = page.evaluate("[stylestreamVideo.videoWidth, stylestreamVideo.videoHeight]")
        box = page.evaluate("(() => { const r = stylestreamVideo.getBoundingClientRect();"
                            " return [r.width, r.height]; })()")  # fmt: skip
        controls = page.evaluate("stylestreamVideo.controls")
        page.goto(f"{viewer_url}source")
        page.wait_for_function("document.getElementById('v').naturalWidth > 0")
        mjpeg = page.evaluate("document.getElementById('v').naturalWidth")
        browser.close()
    assert size == [320, 240] and box == [640, 360] and controls is False  # fills the window
    assert mjpeg == 64
