"""``stylestream bench studio``: the studio's round-trip latency, measured with frame markers.

A generated clip with a frame counter drawn into every frame (:mod:`~streamer.studio.markers`)
is the fake camera of a real headless Chromium. The studio reads each received frame's counter
and draws it back into the stylized frame (``stamp_markers``); the page reads the counter of
every frame shown in the local preview and in the returned video (``requestVideoFrameCallback``)
and records, per counter, presentation time of the stylized frame minus that of the camera
frame: the round trip camera -> browser encoder -> network -> server decode -> model -> server
encoder -> network -> browser jitter buffer and decoder -> screen, on one clock. Frames dropped
on the way have no pair and do not count (their share is reported).
"""

from __future__ import annotations

import asyncio
import tempfile
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from streamer.live import percentile


@dataclass(frozen=True)
class BenchStudioConfig:
    size: tuple[int, int] = (180, 320)  # (height, width): camera and stylized size
    fps: int = 15
    seconds: float = 20.0
    warmup_s: float = 4.0
    weights: str | None = None
    device: str = "auto"
    precision: str = "auto"

    def __post_init__(self) -> None:
        if not 1 <= self.fps <= 60 or self.seconds <= 0:
            raise ValueError(
                f"fps must be in [1, 60] and seconds > 0, got {self.fps}, {self.seconds}"
            )


def run_bench_studio(
    config: BenchStudioConfig, *, print_line: Callable[[str], None] = print
) -> dict[str, Any]:
    from streamer.studio.app import run_studio
    from streamer.studio.browser import write_marker_clip
    from streamer.studio.config import StudioConfig

    height, width = config.size
    with tempfile.TemporaryDirectory(prefix="bench-studio-") as folder:
        tmp = Path(folder)
        clip = write_marker_clip(tmp / "clip.y4m", width, height, config.fps, config.fps * 20)
        studio_config = StudioConfig(
            port=0,
            size=config.size,
            untrained=config.weights is None,
            weights=config.weights,
            device=config.device,
            precision=config.precision,
            run_dir=str(tmp / "run"),
            stamp_markers=True,
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
            page_numbers = asyncio.run(_measure(config, clip, info["studio"].url))
        finally:
            stop.set()
            thread.join(60)
    trips = page_numbers["round_trips_ms"]
    stream = page_numbers["stream"]
    report = {
        "size": f"{width}x{height}",
        "camera_fps": config.fps,
        "seconds": config.seconds,
        "weights": config.weights or "random (untrained)",
        "device": config.device,
        "frames_shown": page_numbers["frames_shown"],
        "shown_fps": round(page_numbers["frames_shown"] / config.seconds, 2),
        "matched_frames": len(trips),
        "round_trip_p50_ms": round(percentile(trips, 0.5), 1) if trips else None,
        "round_trip_p95_ms": round(percentile(trips, 0.95), 1) if trips else None,
        "round_trip_mean_ms": round(sum(trips) / len(trips), 1) if trips else None,
        "server_p50_ms": stream.get("latency_p50_ms"),
        "server_p95_ms": stream.get("latency_p95_ms"),
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


async def _measure(config: BenchStudioConfig, clip: Path, url: str) -> dict[str, Any]:
    from streamer.studio.browser import Chromium

    async with Chromium(clip) as browser:
        page = await browser.open(url + "?autostart=1")
        await page.wait_for("window.studio && window.studio.framesShown > 3", 120)
        await asyncio.sleep(config.warmup_s)
        await page.evaluate("studio.bench.roundTrips = []; studio.benchStart = studio.framesShown")
        await asyncio.sleep(config.seconds)
        numbers = await page.evaluate(
            "({trips: studio.bench.roundTrips.slice(), "
            "shown: studio.framesShown - studio.benchStart, id: studio.connectionId})"
        )
        status = await page.evaluate(
            "fetch('api/status').then(r => r.json()).then(s => s.engine.streams)"
        )
        await page.close()
    stream = next((s for s in status if s["name"] == numbers["id"]), {})
    return {"round_trips_ms": numbers["trips"], "frames_shown": numbers["shown"], "stream": stream}
