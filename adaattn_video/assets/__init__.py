"""Bundled demo and test images (see README.md beside this file for their source and licence)."""

from __future__ import annotations

from pathlib import Path

ASSETS_DIR = Path(__file__).resolve().parent
CONTENTS_DIR = ASSETS_DIR / "contents"
STYLES_DIR = ASSETS_DIR / "styles"
DEFAULT_STYLE = STYLES_DIR / "udnie.jpg"
DEFAULT_CONTENT = CONTENTS_DIR / "tubingen.jpg"


def content_images() -> list[Path]:
    """The bundled content photos, sorted by name."""
    return sorted(CONTENTS_DIR.glob("*.jp*g"))


def style_images() -> list[Path]:
    """The bundled style paintings, sorted by name."""
    return sorted(STYLES_DIR.glob("*.jp*g"))
