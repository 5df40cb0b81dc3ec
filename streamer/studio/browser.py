"""Headless Chromium with a fake camera, driven over the Chrome DevTools protocol: the studio's
browser tests and ``bench studio`` use a real browser (Debian's ``chromium``), not a mock.

- :func:`write_marker_clip`: a Y4M clip (what Chromium's fake camera plays, looping) with a
  moving picture and a frame counter (:mod:`~streamer.studio.markers`) in every frame.
- :class:`Chromium`: starts the browser with the fake camera and loopback WebRTC allowed.
- :class:`Page`: one tab; ``evaluate`` JavaScript, ``screenshot``, ``close``.
"""

from __future__ import annotations

import asyncio
import base64
import itertools
import json
import os
import re
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from adaattn_video.errors import StylestreamError
from streamer.studio.markers import draw_marker


class BrowserError(StylestreamError, RuntimeError):
    """Chromium is missing, did not start, or a page script failed."""


def clip_frame(index: int, width: int, height: int) -> np.ndarray:
    """(H, W, 3) uint8 RGB: a colour gradient, a moving disc and the frame marker ``index``."""
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
    """Write a Y4M (4:2:0) clip of :func:`clip_frame` frames; returns ``path``."""
    if width % 2 or height % 2:
        raise ValueError(f"Y4M 4:2:0 needs even sides, got {width}x{height}")
    with open(path, "wb") as out:
        out.write(f"YUV4MPEG2 W{width} H{height} F{fps}:1 Ip A1:1 C420jpeg\n".encode())
        for index in range(frames):
            yuv = cv2.cvtColor(clip_frame(index, width, height), cv2.COLOR_RGB2YUV_I420)
            out.write(b"FRAME\n")
            out.write(yuv.tobytes())
    return path


CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-quic",
    "--hide-scrollbars",
    "--mute-audio",
    "--use-fake-ui-for-media-stream",
    "--use-fake-device-for-media-stream",
    "--allow-loopback-in-peer-connection",
    "--disable-features=WebRtcHideLocalIpsWithMdns",
    "--autoplay-policy=no-user-gesture-required",
    "--disable-renderer-backgrounding",
    "--disable-background-timer-throttling",
    "--disable-backgrounding-occluded-windows",
    "--ignore-certificate-errors",  # the studio's self-signed certificate in tests
)


def find_chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(name)
        if found:
            return found
    raise BrowserError(
        "chromium is not installed: apt-get install --no-install-recommends chromium"
    )


class Chromium:
    """``async with Chromium(clip) as browser: page = await browser.open(url)``."""

    def __init__(self, clip: Path, *, window: tuple[int, int] = (1280, 800)) -> None:
        self.clip = clip
        self.window = window
        self._profile = tempfile.TemporaryDirectory(prefix="studio-chromium-")
        self._process: subprocess.Popen[bytes] | None = None
        self._session: Any = None
        self.port: int | None = None
        self._pages: list[Page] = []

    async def __aenter__(self) -> Chromium:
        import aiohttp

        profile = self._profile.name
        self._process = subprocess.Popen(
            [
                find_chromium(),
                *CHROMIUM_FLAGS,
                f"--use-file-for-fake-video-capture={self.clip}",
                f"--window-size={self.window[0]},{self.window[1]}",
                f"--user-data-dir={profile}",
                "--remote-debugging-port=0",
                "about:blank",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            env={**os.environ, "HOME": profile},
        )
        assert self._process.stderr is not None
        deadline = time.monotonic() + 60
        loop = asyncio.get_running_loop()
        while self.port is None:
            line = await loop.run_in_executor(None, self._process.stderr.readline)
            if not line:
                raise BrowserError("chromium exited before it opened its DevTools port")
            found = re.search(rb"DevTools listening on ws://[^:]+:(\d+)/", line)
            if found:
                self.port = int(found.group(1))
            if time.monotonic() > deadline:
                raise BrowserError("chromium did not open its DevTools port within 60 s")
        # Keep reading stderr so chromium never blocks on a full pipe.
        loop.run_in_executor(None, self._drain)
        self._session = aiohttp.ClientSession()
        return self

    def _drain(self) -> None:
        assert self._process is not None and self._process.stderr is not None
        for _ in iter(self._process.stderr.readline, b""):
            pass

    async def open(self, url: str) -> Page:
        """A new tab at ``url``."""
        async with self._session.put(f"http://127.0.0.1:{self.port}/json/new?{url}") as response:
            target = await response.json(content_type=None)
        page = Page(self._session, target["webSocketDebuggerUrl"], target["id"], self.port)
        await page.connect()
        await page.send(
            "Emulation.setDeviceMetricsOverride",
            width=self.window[0],
            height=self.window[1],
            deviceScaleFactor=1,
            mobile=False,
        )
        self._pages.append(page)
        return page

    async def __aexit__(self, *exc: object) -> None:
        for page in self._pages:
            await page.detach()
        if self._session is not None:
            await self._session.close()
        if self._process is not None:
            self._process.terminate()
            try:
                self._process.wait(10)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait(5)
        self._profile.cleanup()


class Page:
    """One tab over its DevTools websocket."""

    def __init__(self, session: Any, ws_url: str, target_id: str, port: int | None) -> None:
        self._session = session
        self._ws_url = ws_url
        self.target_id = target_id
        self._port = port
        self._ws: Any = None
        self._ids = itertools.count(1)
        self._waiting: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self._reader: asyncio.Task[None] | None = None
        self.console: list[str] = []

    async def connect(self) -> None:
        self._ws = await self._session.ws_connect(self._ws_url, max_msg_size=64 * 1024 * 1024)
        self._reader = asyncio.ensure_future(self._read())
        await self.send("Runtime.enable")

    async def _read(self) -> None:
        async for message in self._ws:
            data = json.loads(message.data)
            if "id" in data and data["id"] in self._waiting:
                self._waiting.pop(data["id"]).set_result(data)
            elif data.get("method") == "Runtime.consoleAPICalled":
                args = data["params"].get("args", [])
                self.console.append(
                    " ".join(str(a.get("value", a.get("description"))) for a in args)
                )
            elif data.get("method") == "Runtime.exceptionThrown":
                self.console.append(json.dumps(data["params"]["exceptionDetails"])[:500])
        for future in self._waiting.values():
            if not future.done():
                future.set_exception(BrowserError("the page's DevTools connection closed"))

    async def send(self, method: str, **params: Any) -> dict[str, Any]:
        message_id = next(self._ids)
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._waiting[message_id] = future
        await self._ws.send_str(json.dumps({"id": message_id, "method": method, "params": params}))
        reply = await asyncio.wait_for(future, 60)
        if "error" in reply:
            raise BrowserError(f"{method}: {reply['error']}")
        return reply.get("result", {})

    async def evaluate(self, expression: str) -> Any:
        """Run JavaScript (promises awaited) and return its JSON value."""
        result = await self.send(
            "Runtime.evaluate", expression=expression, awaitPromise=True, returnByValue=True
        )
        if "exceptionDetails" in result:
            details = result["exceptionDetails"]
            text = details.get("exception", {}).get("description") or details.get("text")
            raise BrowserError(f"page script failed: {text}")
        return result.get("result", {}).get("value")

    async def wait_for(self, expression: str, timeout_s: float = 30.0, poll_s: float = 0.2) -> Any:
        """Poll ``expression`` until it is truthy; returns its value."""
        deadline = time.monotonic() + timeout_s
        while True:
            value = await self.evaluate(expression)
            if value:
                return value
            if time.monotonic() > deadline:
                raise BrowserError(
                    f"timed out after {timeout_s:.0f} s waiting for {expression!r}; "
                    f"console: {self.console[-5:]}"
                )
            await asyncio.sleep(poll_s)

    async def screenshot(self, path: Path) -> Path:
        result = await self.send("Page.captureScreenshot", format="png")
        path.write_bytes(base64.b64decode(result["data"]))
        return path

    async def close(self) -> None:
        """Close the tab as a user would (the page's pagehide handler runs)."""
        async with self._session.get(f"http://127.0.0.1:{self._port}/json/close/{self.target_id}"):
            pass
        await self.detach()

    async def detach(self) -> None:
        if self._ws is not None and not self._ws.closed:
            await self._ws.close()
        if self._reader is not None:
            self._reader.cancel()
