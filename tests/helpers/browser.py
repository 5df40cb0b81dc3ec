"""A real browser for the browser tests: Debian's ``chromium`` driven with Playwright (never
``playwright install``), with the fake camera and the loopback WebRTC flags of ``bench studio``
(:func:`benchmarks.studio_latency.chromium_args`).

- :func:`chromium`: ``async with chromium(clip) as browser: tab = await browser.open(url)``.
- :class:`Tab`: one page; ``evaluate``, ``wait_for`` (the page's console in the timeout
  message), ``upload``, ``screenshot``, ``close``.
- :func:`screenshot`: one picture of a page after a condition holds (synchronous).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from benchmarks.studio_latency import chromium_args, find_browser

WINDOW = (1280, 800)


class Tab:
    """One page of :class:`Browser`, with every console line it printed."""

    def __init__(self, page: Any) -> None:
        self.page = page
        self.console: list[str] = []
        page.on("console", lambda message: self.console.append(message.text))
        page.on("pageerror", lambda error: self.console.append(f"page error: {error}"))

    async def evaluate(self, expression: str) -> Any:
        """Run JavaScript (promises awaited); returns its JSON value."""
        return await self.page.evaluate(expression)

    async def wait_for(self, expression: str, timeout_s: float = 30.0) -> Any:
        """Poll ``expression`` (every 0.2 s) until it is truthy; returns its value."""
        from playwright.async_api import TimeoutError as PlaywrightTimeout

        try:
            handle = await self.page.wait_for_function(
                expression, timeout=timeout_s * 1000, polling=200
            )
        except PlaywrightTimeout:
            raise AssertionError(
                f"timed out after {timeout_s:.0f} s waiting for {expression!r}; "
                f"console: {self.console[-5:]}"
            ) from None
        return await handle.json_value()

    async def upload(self, selector: str, path: Path) -> None:
        """Choose ``path`` in the file input ``selector`` (its change event fires)."""
        await self.page.set_input_files(selector, str(path))

    async def screenshot(self, path: Path) -> Path:
        await self.page.screenshot(path=str(path))
        return path

    async def close(self) -> None:
        """Close the tab as a user would (the page's pagehide handler runs)."""
        await self.page.close()


class Browser:
    """A started Chromium; :meth:`open` gives tabs at the window size."""

    def __init__(self, context: Any) -> None:
        self.context = context

    async def open(self, url: str) -> Tab:
        page = await self.context.new_page()
        tab = Tab(page)
        await page.goto(url)
        return tab


@asynccontextmanager
async def chromium(clip: Path | None = None) -> AsyncIterator[Browser]:
    """Headless Chromium whose fake camera plays ``clip`` (Y4M), closed on exit."""
    from playwright.async_api import async_playwright

    executable = find_browser()  # or one line: what to install
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=executable, args=chromium_args(clip)
        )
        try:
            context = await browser.new_context(
                viewport={"width": WINDOW[0], "height": WINDOW[1]},
                ignore_https_errors=True,  # the studio's self-signed certificate in tests
            )
            yield Browser(context)
        finally:
            await browser.close()


def screenshot(url: str, path: Path, ready: str, size: tuple[int, int] = (480, 360)) -> Path:
    """A ``size`` (width, height) screenshot of ``url`` once the expression ``ready`` holds."""
    from playwright.sync_api import sync_playwright

    executable = find_browser()  # or one line: what to install
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, args=chromium_args())
        try:
            page = browser.new_page(viewport={"width": size[0], "height": size[1]})
            page.goto(url, wait_until="commit")
            page.wait_for_function(ready, timeout=60_000, polling=100)
            page.screenshot(path=str(path))
        finally:
            browser.close()
    return path
