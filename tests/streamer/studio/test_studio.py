"""``stylestream studio``: the page in a real headless Chromium (Debian's package) whose fake
camera plays a generated clip (the only mock: there is no camera here), over real WebRTC
(aiortc) on loopback, through the real serve engine with the real architecture on 160x96
frames and random weights (``--untrained``: the output is NOT a stylization; these tests check
the plumbing, never the look).

Screenshots of the page are saved as test artifacts under ``test-artifacts/studio/`` (or
``$STYLESTREAM_TEST_ARTIFACTS``)."""

from __future__ import annotations

import asyncio
import io
import json
import os
import re
import ssl
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import av
import cv2
import numpy as np
import pytest
from helpers.browser import Browser, Tab, chromium
from helpers.cli import main_error
from helpers.network import ANY_PORT

from adaattn_video.errors import StylestreamError
from adaattn_video.settings import StylizerSpec
from benchmarks.studio_latency import write_marker_clip
from configkit.convert import from_mapping
from streamer.frames import FrameSource
from streamer.serve.push import PushSource
from streamer.studio.config import StudioConfig, StudioConfigError, require_studio_packages
from streamer.studio.markers import draw_marker, read_marker
from streamer.studio.styles import StyleLibrary, StyleUploadError
from streamer.zeromq.subscriber import Subscriber

SIZE = (96, 160)  # (height, width) stylized
CLIP = (320, 180)  # fake camera (width, height)
ARTIFACTS = Path(os.environ.get("STYLESTREAM_TEST_ARTIFACTS", "test-artifacts")) / "studio"


# -- pieces without a browser ------------------------------------------------------------------
@pytest.mark.parametrize(("width", "height"), [(160, 96), (320, 180), (1280, 720)])
def test_markers_read_back_what_was_drawn_and_refuse_a_broken_parity(
    width: int, height: int
) -> None:
    rng = np.random.default_rng(width)
    for value in (0, 1, 5, 1023, 2047, int(rng.integers(0, 2048))):
        image = rng.integers(0, 255, (height, width, 3), dtype=np.uint8)
        assert read_marker(draw_marker(image, value)) == value
    image = draw_marker(np.zeros((height, width, 3), np.uint8), 6)  # bits 1 and 2: parity 0
    b = max(8, width // 20)
    image[0:b, b * 2 : b * 3] = 16  # flip bit 1 only: the parity no longer matches
    assert read_marker(image) is None


def test_a_push_source_keeps_the_newest_frame_and_ends_when_closed() -> None:
    source = PushSource(capacity=1)
    assert isinstance(source, FrameSource)
    frames = [source.push(np.full((8, 8, 3), i, np.uint8)) for i in range(3)]
    assert [f.index for f in frames] == [0, 1, 2]
    counters = source.counters()
    assert counters.dropped == 2 and counters.read == 3  # 0, 1 replaced before anyone took them
    assert source.live and (source.info().width, source.info().height) == (8, 8)
    assert frames[2].pts is not None and frames[2].pts >= frames[0].pts
    source.close()
    got = list(source)
    assert [f.index for f in got] == [2] and int(got[0].image[0, 0, 0]) == 2
    with pytest.raises(ValueError, match="uint8 RGB"):
        source.push(np.zeros((8, 8), np.uint8))


def test_a_push_fed_stream_of_an_embedded_engine_reaches_its_output_with_numbers() -> None:
    """The studio's engine (no streams, no control, no ZeroMQ) with one push-fed stream and
    one extra output, on the real untrained architecture: every stylized frame reaches the
    output and the stream reports a latency and the drops of its source."""
    from adaattn_video.assets import style_images
    from streamer.frames import Frame, FrameSink
    from streamer.serve.config import StreamSpec
    from streamer.serve.server import StreamServer
    from streamer.studio.config import engine_config

    class Collect(FrameSink):
        def __init__(self) -> None:
            self.frames: list[Frame] = []

        def write(self, frame: Frame) -> None:
            self.frames.append(frame)

        def close(self) -> None:
            pass

    spec = StylizerSpec(untrained=True, device="cpu", precision="fp32", style_size=64, size=SIZE)
    config = StudioConfig(stylizer=spec)
    output, source = Collect(), PushSource(capacity=1)
    style = str(style_images()[0])
    with StreamServer(engine_config(config)) as engine:
        assert engine.publisher is None and engine.control is None
        engine.scheduler.start()
        engine.add_stream(
            StreamSpec(name="c1", source="webrtc:c1", styles=(style,), size=SIZE),
            source=source, outputs=(output,),
        )  # fmt: skip
        for i in range(4):
            source.push(np.full((*SIZE, 3), 40 * i, np.uint8))
            deadline = time.monotonic() + 60
            while len(output.frames) <= i and time.monotonic() < deadline:
                time.sleep(0.02)
        engine.observe()
        status = engine.status()["streams"][0]
    assert len(output.frames) == 4 and output.frames[0].image.shape == (*SIZE, 3)
    assert status["latency_p50_ms"] is not None and status["latency_p50_ms"] > 0
    assert status["frames_out"] == 4 and status["dropped"] == 0


def _png(width: int, height: int) -> bytes:
    ok, data = cv2.imencode(".png", np.full((height, width, 3), 90, np.uint8))
    assert ok
    return data.tobytes()


def test_uploads_are_size_limited_and_decoded_safely(tmp_path: Path) -> None:
    bundled = tmp_path / "one.png"
    bundled.write_bytes(_png(64, 64))
    library = StyleLibrary([bundled], tmp_path / "uploads", max_bytes=200_000)
    with pytest.raises(StyleUploadError, match=r"limit is 0\.2 MB"):
        library.add_upload(b"x" * 200_001, "big.jpg")
    with pytest.raises(StyleUploadError, match="not a picture"):
        library.add_upload(b"<script>alert(1)</script>", "evil.png")
    # A small file that claims a picture over the image reader's pixel limit (50 megapixels)
    # is refused from its header, before its pixels are decoded.
    from PIL import Image

    buffer = io.BytesIO()
    Image.new("1", (8000, 7000)).save(buffer, format="PNG")  # 56 MP in a few KB
    huge = buffer.getvalue()
    assert len(huge) < 200_000
    with pytest.raises(StyleUploadError, match="8000x7000"):
        library.add_upload(huge, "huge.png")
    _, jpeg = cv2.imencode(
        ".jpg", np.random.default_rng(0).integers(0, 255, (80, 120, 3), np.uint8)
    )
    truncated = jpeg.tobytes()[: len(jpeg) // 2]
    with pytest.raises(StyleUploadError, match=r"cut\.jpg' is not a picture that can be decoded"):
        library.add_upload(truncated, "cut.jpg")
    assert not list((tmp_path / "uploads").glob("*")), "a refused upload left a file behind"
    entry = library.add_upload(jpeg.tobytes(), "../../My Painting!.jpg")
    assert entry.kind == "upload" and entry.path.parent == tmp_path / "uploads"
    assert entry.path.suffix == ".jpg" and re.fullmatch(r"upload\d+-My-Painting", entry.id)
    assert [e.id for e in library.entries()] == ["one", entry.id]
    assert library.thumbnail(entry.id)[:2] == b"\xff\xd8"


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"host": "0.0.0.0"}, "--allow-remote"),
        ({"cert": "a.pem"}, "both --cert and --key"),
        ({"size": "160x95"}, "even sides"),
        ({"size": 640}, "WIDTHxHEIGHT"),
        ({"token": "short"}, "at least 8"),
        ({"alpha": 1.5}, "alpha"),
        ({"upload_mb": 0}, "megabytes > 0"),
        ({"weights": "w.safetensors", "untrained": True}, "not both"),
    ],
)
def test_bad_studio_settings_are_one_line_errors(options: dict[str, Any], message: str) -> None:
    with pytest.raises(StylestreamError, match=message) as raised:
        from_mapping(StudioConfig, options, error=StudioConfigError)
    assert "\n" not in str(raised.value)


def test_the_studio_holds_one_stylizer_spec_and_its_engine_needs_no_control() -> None:
    from streamer.studio.config import engine_config

    config = from_mapping(
        StudioConfig, {"style_size": 256, "device": "cpu", "upload_mb": "2.5", "alpha": 0.3}
    )
    assert config.size == (360, 640) and config.upload_bytes == 2_500_000
    assert config.stylizer == StylizerSpec(style_size=256, device="cpu", alpha=0.3, size=(360, 640))
    engine = engine_config(config)
    assert engine.stylizer is config.stylizer and engine.control is None and engine.zmq is None
    assert engine.embedded and not engine.streams
    # Only an embedded engine may start with nothing to serve; `serve` itself refuses that.
    from streamer.serve.config import ServeConfig, ServeConfigError

    with pytest.raises(ServeConfigError, match="nothing to serve"):
        ServeConfig(zmq=None, control=None)


def test_remote_means_https_and_a_token_by_default() -> None:
    assert not StudioConfig().tls
    remote = StudioConfig(host="0.0.0.0", allow_remote=True)
    assert remote.remote and remote.tls


def test_a_missing_extra_names_the_install_command(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "aiortc", None)
    with pytest.raises(ImportError, match=r"pip install -e '\.\[studio\]'"):
        require_studio_packages()


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["studio", "--host", "0.0.0.0"], "--allow-remote"),
        (["studio", "--size", "100x33"], "even sides"),
        (["studio", "--style", "no-such-painting.jpg"], "no-such-painting.jpg does not exist"),
    ],
)
def test_studio_mistakes_are_one_error_line_and_exit_2(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert message in main_error(argv, capsys)


def test_studio_without_the_extra_says_how_to_install_it(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from streamer.cli import main

    monkeypatch.setitem(sys.modules, "aiohttp", None)
    assert main(["studio"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [
        "stylestream: error: the studio needs aiohttp and aiortc (aiohttp is missing): "
        "pip install -e '.[studio]'"
    ]


def test_the_example_config_loads(monkeypatch: pytest.MonkeyPatch) -> None:
    from streamer.cli import command_config

    monkeypatch.chdir(Path(__file__).resolve().parents[3])  # its paths are relative to the repo
    config = command_config(["studio", "--config", "configs/studio.yaml", "--port", "0"])
    assert config.port == 0 and config.size == (360, 640) and len(config.stylizer.styles) == 3
    assert config.upload_bytes == 10_000_000 and config.stylizer.style_size == 512
    assert config.host == "127.0.0.1" and not config.tls


def test_a_slow_client_gets_the_newest_stylized_frame_and_the_rest_are_counted() -> None:
    from types import SimpleNamespace

    from streamer.studio.connection import ConnectionStats, StylizedTrack

    async def scenario() -> None:
        owner = SimpleNamespace(stats=ConnectionStats())
        track = StylizedTrack(owner)
        for value in (10, 20, 30):  # the encoder took none of them yet
            track.offer(np.full((32, 48, 3), value, np.uint8))
        frame = await track.recv()
        assert int(frame.to_ndarray(format="rgb24")[0, 0, 0]) in range(28, 33)  # the newest
        assert owner.stats.dropped_send == 2
        track.offer(np.full((32, 48, 3), 40, np.uint8))
        later = await track.recv()
        assert later.pts > frame.pts and later.time_base == frame.time_base

    asyncio.run(scenario())


# -- a running studio ----------------------------------------------------------------------------
class RunningStudio:
    def __init__(self, config: StudioConfig) -> None:
        from streamer.studio.server import run_studio

        self.config = config
        self.info: Any = None
        self.result: Any = None
        self.error: BaseException | None = None
        ready = threading.Event()
        self.stop = threading.Event()

        def on_ready(info: Any) -> None:
            self.info = info
            ready.set()

        def run() -> None:
            try:
                self.result = run_studio(config, on_ready=on_ready, stop_event=self.stop)
            except BaseException as err:
                self.error = err
                ready.set()

        self.thread = threading.Thread(target=run, daemon=True)
        self.thread.start()
        assert ready.wait(180), "the studio did not start"
        if self.error is not None:
            raise self.error
        self.base = self.info.url.split("?")[0]

    def get(self, path: str, token: str | None = None, context: Any = None) -> Any:
        headers = {"X-Studio-Token": token} if token else {}
        request = urllib.request.Request(self.base + path.lstrip("/"), headers=headers)
        with urllib.request.urlopen(request, timeout=30, context=context) as response:
            return json.loads(response.read())

    def close(self) -> None:
        self.stop.set()
        self.thread.join(60)
        assert not self.thread.is_alive(), "the studio did not stop"


@pytest.fixture(scope="module")
def studio(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningStudio]:
    run_dir = tmp_path_factory.mktemp("studio-run")
    running = RunningStudio(
        StudioConfig(
            port=0,
            stylizer=StylizerSpec(
                size=SIZE, untrained=True, device="cpu", precision="fp32", style_size=128
            ),
            run_dir=str(run_dir),
            zmq=ANY_PORT,
        )
    )
    yield running
    running.close()


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_marker_clip(tmp_path_factory.mktemp("clip") / "clip.y4m", *CLIP, 15, 90)


async def _poll(condition: Any, timeout_s: float, what: str, interval_s: float = 0.05) -> Any:
    deadline = time.monotonic() + timeout_s
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s} s: {what}")
        await asyncio.sleep(interval_s)


async def _open_studio_page(browser: Browser, studio: RunningStudio) -> Tab:
    page = await browser.open(studio.info.url + "?autostart=1")
    await page.wait_for("window.studio && window.studio.framesShown > 5", 90)
    return page


# What differs between the returned (stylized) video and the local preview, both drawn at the
# stylized size; and the marker in the local preview (the clip really is the camera).
COMPARE_JS = """(() => {
  const w = 160, h = 96, c = document.createElement('canvas'); c.width = w; c.height = h;
  const g = c.getContext('2d', {willReadFrequently: true});
  g.drawImage(document.getElementById('stylized'), 0, 0, w, h);
  const a = g.getImageData(0, 0, w, h).data;
  g.drawImage(document.getElementById('local'), 0, 0, w, h);
  const b = g.getImageData(0, 0, w, h).data;
  let d = 0; for (let i = 0; i < a.length; i += 4) d += Math.abs(a[i] - b[i]) + Math.abs(a[i+1] - b[i+1]) + Math.abs(a[i+2] - b[i+2]);
  return {diff: d / (w * h * 3), localMarker: readMarker(document.getElementById('local'))};
})()"""


@pytest.mark.slow
@pytest.mark.browser
def test_the_page_round_trip_style_alpha_mix_upload_snapshot_record(
    studio: RunningStudio, clip: Path, tmp_path: Path
) -> None:
    async def scenario() -> tuple[str, Path, list[str]]:
        async with chromium(clip) as browser:
            page = await _open_studio_page(browser, studio)
            conn = await page.evaluate("studio.connectionId")
            # Stylized frames arrive at the studio's size and are not the input.
            size = await page.evaluate(
                "[document.getElementById('stylized').videoWidth, "
                "document.getElementById('stylized').videoHeight]"
            )
            assert size == [SIZE[1], SIZE[0]]
            compared = await page.wait_for(f"(c => c.localMarker !== null && c)({COMPARE_JS})", 10)
            assert compared["localMarker"] is not None, "the fake camera is not the clip"
            assert compared["diff"] > 8, f"the returned video looks like the input: {compared}"
            assert not await page.evaluate("document.getElementById('untrained').hidden")

            def link() -> dict[str, Any]:
                return studio.get(f"api/connections/{conn}")

            # Click another style: the server's frames carry it within a few frames.
            assert link()["link_style_id"] == "rain_princess"
            await page.evaluate("document.querySelector('.tile[data-style=\"wave\"]').click()")
            await page.wait_for("studio.requestedStyleId === 'wave'", 30)
            sent_when_set = link()["link_sent"]
            await _poll(lambda: link()["link_style_id"] == "wave", 20, "frames in style wave")
            late = link()["link_sent"] - sent_when_set
            assert late <= 4, f"{late} frames still had the old style after the switch"
            assert await page.wait_for("studio.serverStyleId === 'wave'", 10)

            # The slider changes alpha on the server.
            await page.evaluate(
                "(() => { const s = document.getElementById('alpha'); s.value = 40; "
                "s.dispatchEvent(new Event('input')); s.dispatchEvent(new Event('change')); })()"
            )
            await _poll(lambda: link()["alpha"] == pytest.approx(0.4), 20, "alpha 0.4")
            engine = studio.get("api/status")["engine"]["streams"]
            assert [s["alpha"] for s in engine if s["name"] == conn] == [pytest.approx(0.4)]

            # Mix two styles.
            await page.evaluate(
                "(() => { document.getElementById('mix-style').value = 'udnie'; "
                "const m = document.getElementById('mix-on'); m.checked = true; "
                "m.dispatchEvent(new Event('change')); })()"
            )
            await _poll(lambda: link()["link_style_id"] == "wave:0.50+udnie:0.50", 30, "the mix")

            # Upload a picture: it joins the gallery and becomes the style.
            picture = tmp_path / "my painting.jpg"
            cv2.imwrite(
                str(picture), np.random.default_rng(1).integers(0, 255, (90, 120, 3), np.uint8)
            )
            await page.evaluate("document.getElementById('mix-on').click()")  # mixing off
            await page.upload("#upload", picture)  # fires the change event, as a user's choice
            await page.wait_for("document.querySelectorAll('.tile').length === 4", 30)
            await _poll(
                lambda: str(link()["link_style_id"]).startswith("upload1-my-painting"),
                30,
                "the uploaded style",
            )
            uploads = list((studio.info.run_dir / "styles").glob("upload1-*.jpg"))
            assert len(uploads) == 1

            # Snapshot (in the browser) and record (on the server).
            await page.evaluate("document.getElementById('snapshot').click()")
            assert await page.evaluate("studio.snapshots.length") == 1
            assert await page.evaluate("document.querySelector('#captures img').naturalWidth")
            await page.evaluate("document.getElementById('record').click()")
            await _poll(lambda: link()["recording"] is not None, 10, "recording on")
            sent = link()["link_sent"]
            await _poll(lambda: link()["link_sent"] >= sent + 8, 30, "8 recorded frames")
            # The engine's numbers of the connection's stream: received -> handed to the
            # connection (measured with or without ZeroMQ), rates over the last seconds.
            numbers = link()
            assert numbers["latency_p50_ms"] is not None and numbers["latency_p50_ms"] > 0
            assert numbers["fps_out"] > 0
            await page.evaluate("document.getElementById('record').click()")
            await page.wait_for("!!document.querySelector('#captures .file')", 20)
            text = await page.evaluate("document.querySelector('#captures .file').textContent")
            await asyncio.sleep(0.6)  # one stats poll: the overlay shows the numbers
            ARTIFACTS.mkdir(parents=True, exist_ok=True)
            shot = await page.screenshot(ARTIFACTS / "studio-page.png")
            overlay = await page.evaluate(
                "[...document.querySelectorAll('#overlay b')].map(b => b.textContent)"
            )
            await page.close()
            return text, shot, overlay

    text, shot, overlay = asyncio.run(scenario())
    recordings = list((studio.info.run_dir / "recordings").glob("*.mp4"))
    assert len(recordings) == 1 and recordings[0].name in text
    with av.open(str(recordings[0])) as container:
        frames = list(container.decode(video=0))
    assert len(frames) >= 8 and (frames[0].width, frames[0].height) == (SIZE[1], SIZE[0])
    # The screenshot looks like the studio: dark page, the stylized picture in the stage,
    # the gallery's thumbnails on the right, numbers in the overlay.
    image = cv2.imread(str(shot))
    assert image is not None and image.shape[:2] == (800, 1280)
    stage = image[140:600, 40:880].astype(int)
    assert stage.std() > 10, "the stage is blank"
    gallery = image[150:260, 950:1250].astype(int)
    assert gallery.std() > 20, "the gallery has no pictures"
    assert overlay[0] not in ("–", "0.0") and overlay[-1].startswith("upload1-")


@pytest.mark.slow
@pytest.mark.browser
def test_two_browsers_have_their_own_styles_and_closing_one_frees_its_stream(
    studio: RunningStudio, clip: Path
) -> None:
    async def scenario() -> None:
        async with chromium(clip) as browser:
            first = await _open_studio_page(browser, studio)
            second = await _open_studio_page(browser, studio)
            ids = [await p.evaluate("studio.connectionId") for p in (first, second)]
            assert ids[0] != ids[1]
            await first.evaluate("document.querySelector('.tile[data-style=\"wave\"]').click()")
            await second.evaluate("document.querySelector('.tile[data-style=\"udnie\"]').click()")

            def styles() -> dict[str, str]:
                return {
                    s["name"]: s["style_id"] for s in studio.get("api/status")["engine"]["streams"]
                }

            await _poll(lambda: styles() == {ids[0]: "wave", ids[1]: "udnie"}, 30, "one style each")
            assert await first.wait_for("studio.serverStyleId === 'wave'", 10)
            assert await second.wait_for("studio.serverStyleId === 'udnie'", 10)
            # Every connection is also published on ZeroMQ, topic = its id.
            with Subscriber(studio.info.zmq, stream=ids[1], receive_timeout_s=10) as sub:
                frame = await asyncio.get_running_loop().run_in_executor(None, sub.receive)
            assert frame.header.stream == ids[1] and frame.header.style_id == "udnie"
            assert frame.image.shape == (*SIZE, 3)
            await first.close()  # closing the tab frees its stream
            await _poll(lambda: list(styles()) == [ids[1]], 20, "the closed tab's stream gone")
            shown = await second.evaluate("studio.framesShown")
            await second.wait_for(f"studio.framesShown > {shown + 5}", 20)  # the other goes on
            await second.close()
            await _poll(lambda: not styles(), 20, "no streams left")

    asyncio.run(scenario())
    status = studio.get("api/status")
    assert status["connections"] == [] and status["closed_connections"] >= 2


@pytest.mark.slow
def test_https_with_a_generated_certificate_and_an_access_token(tmp_path: Path) -> None:
    running = RunningStudio(
        StudioConfig(
            port=0,
            stylizer=StylizerSpec(size=SIZE, untrained=True, device="cpu"),
            https=True,
            token="s3cret-token",
            run_dir=str(tmp_path),
        )
    )
    try:
        assert running.info.url.startswith("https://") and "token=s3cret-token" in running.info.url
        cert = running.info.cert
        assert cert is not None and cert.is_file()
        context = ssl.create_default_context(cafile=str(cert))  # the generated one, verified
        assert running.get("api/config", "s3cret-token", context)["width"] == SIZE[1]
        for token in (None, "wrong-token"):
            with pytest.raises(urllib.error.HTTPError) as refused:
                running.get("api/config", token, context)
            assert refused.value.code == 403
        with pytest.raises((urllib.error.URLError, ConnectionError)):  # no plain HTTP
            urllib.request.urlopen(running.base.replace("https", "http") + "api/config", timeout=10)
        # Another site (DNS rebinding, or a cross-site POST from the same browser) is refused.
        for headers, method in (({"Host": f"evil.example:{running.info.port}"}, "GET"),
                                ({"Origin": "https://evil.example"}, "POST")):  # fmt: skip
            request = urllib.request.Request(
                running.base + "api/styles", method=method, data=b"" if method == "POST" else None,
                headers={"X-Studio-Token": "s3cret-token", **headers},
            )  # fmt: skip
            with pytest.raises(urllib.error.HTTPError) as refused:
                urllib.request.urlopen(request, timeout=10, context=context)
            assert refused.value.code == 403
        # The page itself needs the token too.
        with urllib.request.urlopen(running.info.url, timeout=10, context=context) as page:
            assert b"stylestream studio" in page.read()
    finally:
        running.close()


def test_self_signed_certificate_names_the_host(tmp_path: Path) -> None:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes

    from streamer.studio.tls import fingerprint, generate_self_signed, server_context

    cert, key = generate_self_signed(tmp_path, "192.168.1.20")
    loaded = x509.load_pem_x509_certificate(cert.read_bytes())
    names = loaded.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert "192.168.1.20" in {str(ip) for ip in names.get_values_for_type(x509.IPAddress)}
    assert oct(key.stat().st_mode & 0o777) == "0o600"
    server_context(cert, key)
    assert fingerprint(cert) == loaded.fingerprint(hashes.SHA256()).hex(":").upper()
