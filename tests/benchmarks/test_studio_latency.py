"""``bench studio`` refuses at once, in one line naming what to install, when its browser is
missing (before any studio or model starts)."""

from __future__ import annotations

import sys

import pytest
from helpers.cli import main_error


@pytest.mark.parametrize("module", ["playwright", "playwright.async_api"])
def test_without_playwright_is_one_line(monkeypatch, capsys, module: str) -> None:
    monkeypatch.setitem(sys.modules, module, None)  # as if Playwright were not installed
    line = main_error(["bench", "studio", "--seconds", "1"], capsys)
    assert "pip install playwright" in line and "playwright install" in line


def test_without_chromium_is_one_line(monkeypatch, capsys) -> None:
    pytest.importorskip("playwright.async_api", reason="pip install playwright")
    monkeypatch.setattr("shutil.which", lambda name: None)
    line = main_error(["bench", "studio", "--seconds", "1"], capsys)
    assert "apt-get install --no-install-recommends chromium" in line
