"""``stylestream bench studio``: the studio's round-trip latency, measured with frame markers.

A generated clip with a frame counter drawn into every frame (:mod:`~streamer.studio.markers`)
is the fake camera of a real headless Chromium. The studio reads each received frame's counter
and draws it back into the stylized frame (``stamp_markers``); the page reads the counter of
every frame shown in the local preview and in the returned video (``requestVideoFrameCallback``)
and records, per counter, presentation time of the stylized frame minus that of the camera
frame: the round trip camera -> browser encoder -> network -> server decode -> model -> server
encoder -> network -> browser jitter buffer and decoder -> screen, on one clock. Frames dropped
on the way have no pair and do not count (their share is reported).

The browser is Debian's ``chromium`` driven with Playwright (``pip install playwright``, in the
``test`` extra; never ``playwright install``: the system browser is used), its fake camera
playing the clip (:func:`write_marker_clip`) and loopback WebRTC allowed (:func:`chromium_args`).
"""

from __future__ import annotations

import asyncio
import shutil
import tempfile
import threading
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from adaattn_video.errors import StylestreamError
from adaattn_video.settings import StylizerSpec
from configkit.convert import option
from streamer.stats import percentile
from streamer.studio.markers import draw_marker

BENCH_SIZE = (180, 320)  # (height, width): camera and stylized size


class BenchStudioConfigError(StylestreamError, ValueError):
    """A ``bench studio`` setting that cannot be used."""


class BrowserMissingError(StylestreamError, RuntimeError):
    """Playwright or the system Chromium is not installed."""


# Headless Chromium with a fake camera playing a file and WebRTC between two loopback ends:
# without --allow-loopback-in-peer-connection and the mDNS feature off, the page and the
# studio on 127.0.0.1 never find a candidate pair. The rest keeps a test browser quiet (no
# network of its own, no sandbox in containers, no GPU) and never throttles a background tab.
CHROMIUM_FLAGS = (
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--use-fake-ui-for-media-stream",
    "--use-fake-device-for-media-stream",
    "--allow-loopback-in-peer-connection",
    "--disable-features=WebRtcHideLocalIpsWithMdns",
    "--autoplay-policy=no-user-gesture-required",
    "--mute-audio",
    "--disable-renderer-backgrounding",
    "--disable-background-timer-throttling",
    "--disable-backgrounding-occluded-windows",
)


def chromium_args(clip: Path | None = None) -> list[str]:
    """Chromium's command-line flags; ``clip``: the Y4M file the fake camera plays (looping)."""
    camera = [] if clip is None else [f"--use-file-for-fake-video-capture={clip}"]
    return [*CHROMIUM_FLAGS, *camera]


def find_browser() -> str:
    """The system Chromium's path, once Playwright is importable; else one clear error."""
    try:
        import playwright.async_api  # noqa: F401
    except ImportError:
        raise BrowserMissingError(
            "a real browser is driven with Playwright, which is not installed: "
            "pip install playwright (or pip install -e '.[test]'); the system chromium is used, "
            "no `playwright install` needed"
        ) from None
    for name in ("chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(name)
        if found:
            return found
    raise BrowserMissingError(
        "chromium is not installed: apt-get install --no-install-recommends chromium"
    )


def clip_frame(index: int, width: int, height: int) -> np.ndarray:
    """(H, W, 3) uint8 RGB: a colour gradient, a moving disc and the frame marker ``index``."""
    import cv2

    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    image = np.empty((height, width, 3), np.uint8)
    image[..., 0] = (x / width * 200 + 30).astype(np.uint8)
    image[..., 1] = (y / height * 160 + 60).astype(np.uint8)
    image[..., 2] = int((index * 7) % 256 * 0.5 + 60)
    cx = int((0.5 + 0.35 * np.cos(index / 10)) * width)
    cy = int((0.55 + 0.3 * np.sin(index / 7)) * height)
    cv2.circle(image, (cx, cy), max(6, height // 6), (250, 240, 90), -1)
    return draw_marker(image, index)


def write_marker_clip(path: Path, width: int, height: int, fps: int, frames: int) -> Path:
    """Write a Y4M (4:2:0) clip of :func:`clip_frame` frames, what Chromium's fake camera
    plays; returns ``path``."""
    if width % 2 or height % 2:
        raise ValueError(f"Y4M 4:2:0 needs even sides, got {width}x{height}")
    import cv2

    with open(path, "wb") as out:
        out.write(f"YUV4MPEG2 W{width} H{height} F{fps}:1 Ip A1:1 C420jpeg\n".encode())
        for index in range(frames):
            yuv = cv2.cvtColor(clip_frame(index, width, height), cv2.COLOR_RGB2YUV_I420)
            out.write(b"FRAME\n")
            out.write(yuv.tobytes())
    return path


@dataclass(frozen=True)
class BenchStudioConfig:
    """``bench studio``: the studio's model (``stylizer``: ``weights``, ``device``,
    ``precision``; ``size`` is the camera's and the stylized size, default 320x180; no
    ``weights``: random weights), the fake camera's rate and the measured time."""

    stylizer: StylizerSpec = option(StylizerSpec(), "the model and the size", flatten=True)
    fps: int = option(15, "fake camera rate", metavar="F")
    seconds: float = option(20.0, "measured time", metavar="S")
    warmup_s: float = option(4.0, "time before measuring", metavar="S")

    def __post_init__(self) -> None:
        if not 1 <= self.fps <= 60 or self.seconds <= 0 or self.warmup_s < 0:
            raise BenchStudioConfigError(
                f"fps must be in [1, 60], seconds > 0 and warmup_s >= 0, got {self.fps}, "
                f"{self.seconds}, {self.warmup_s}"
            )
        spec = self.stylizer
        if spec.size is None:
            spec = replace(spec, size=BENCH_SIZE)
        if not isinstance(spec.size, tuple):
            raise BenchStudioConfigError(f"size must be WIDTHxHEIGHT, got {spec.size}")
        if spec.weights is None and not spec.untrained:  # the default: random weights
            spec = replace(spec, untrained=True)
        object.__setattr__(self, "stylizer", spec)

    @property
    def size(self) -> tuple[int, int]:
        size = self.stylizer.size
        assert isinstance(size, tuple)
        return size


def run_bench_studio(
    config: BenchStudioConfig, *, print_line: Callable[[str], None] = print
) -> dict[str, Any]:
    from streamer.studio.config import StudioConfig
    from streamer.studio.server import run_studio

    browser = find_browser()  # before the studio starts: a missing browser is one line
    height, width = config.size
    with tempfile.TemporaryDirectory(prefix="bench-studio-") as folder:
        tmp = Path(folder)
        clip = write_marker_clip(tmp / "clip.y4m", width, height, config.fps, config.fps * 20)
        studio_config = StudioConfig(
            port=0, stylizer=config.stylizer, run_dir=str(tmp / "run"), stamp_markers=True
        )
        ready = threading.Event()
        stop = threading.Event()
        info: dict[str, Any] = {}

        def on_ready(started: Any) -> None:
            info["studio"] = started
            ready.set()

        def serve() -> None:
            try:
                info["result"] = run_studio(studio_config, on_ready=on_ready, stop_event=stop)
            except BaseException as err:
                info["error"] = err
                ready.set()

        thread = threading.Thread(target=serve, daemon=True)
        thread.start()
        ready.wait(300)
        if "error" in info:
            raise info["error"]
        try:
            page_numbers = asyncio.run(_measure(config, browser, clip, info["studio"].url))
        finally:
            stop.set()
            thread.join(60)
    trips = page_numbers["round_trips_ms"]
    stream = page_numbers["stream"]
    report = {
        "size": f"{width}x{height}",
        "camera_fps": config.fps,
        "seconds": config.seconds,
        "weights": config.stylizer.weights or "random (untrained)",
        "device": config.stylizer.device,
        "frames_shown": page_numbers["frames_shown"],
        "shown_fps": round(page_numbers["frames_shown"] / config.seconds, 2),
        "matched_frames": len(trips),
        "round_trip_p50_ms": round(percentile(trips, 0.5), 1) if trips else None,
        "round_trip_p95_ms": round(percentile(trips, 0.95), 1) if trips else None,
        "round_trip_mean_ms": round(sum(trips) / len(trips), 1) if trips else None,
        "server_p50_ms": _rounded(stream.get("latency_p50_ms")),
        "server_p95_ms": _rounded(stream.get("latency_p95_ms")),
        "server_fps_out": stream.get("fps_out"),
        "dropped": stream.get("dropped"),
    }
    print_line(
        f"bench studio {report['size']} @ {config.fps} fps camera, {report['weights']} weights, "
        f"{config.seconds:.0f} s: shown {report['shown_fps']} fps; round trip (camera frame "
        f"shown -> its stylized frame shown) p50 {report['round_trip_p50_ms']} ms, p95 "
        f"{report['round_trip_p95_ms']} ms over {len(trips)} matched frames; server part "
        f"(received -> stylized, handed to the encoder) p50 {report['server_p50_ms']} ms, p95 "
        f"{report['server_p95_ms']} ms; dropped {report['dropped']}"
    )
    return report


def _rounded(value: float | None) -> float | None:
    return None if value is None else round(value, 1)


async def _measure(config: BenchStudioConfig, browser: str, clip: Path, url: str) -> dict[str, Any]:
    from playwright.async_api import async_playwright

    async with async_playwright() as playwright:
        chromium = await playwright.chromium.launch(
            executable_path=browser, args=chromium_args(clip)
        )
        try:
            page = await chromium.new_page()
            await page.goto(url + "?autostart=1")
            await page.wait_for_function(
                "window.studio && window.studio.framesShown > 3", timeout=120_000, polling=200
            )
            await asyncio.sleep(config.warmup_s)
            await page.evaluate(
                "() => { studio.bench.roundTrips = []; studio.benchStart = studio.framesShown; }"
            )
            await asyncio.sleep(config.seconds)
            numbers = await page.evaluate(
                "({trips: studio.bench.roundTrips.slice(), "
                "shown: studio.framesShown - studio.benchStart, id: studio.connectionId})"
            )
            status = await page.evaluate(
                "fetch('api/status').then(r => r.json()).then(s => s.engine.streams)"
            )
            await page.close()
        finally:
            await chromium.close()
    stream = next((s for s in status if s["name"] == numbers["id"]), {})
    return {"round_trips_ms": numbers["trips"], "frames_shown": numbers["shown"], "stream": stream}
