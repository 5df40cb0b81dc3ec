"""Option values shared by every command: parse functions for ``option(parse=...)``, so a flag
and a YAML key give the same one-line error."""

from __future__ import annotations

from typing import Any

from adaattn_video import settings
from adaattn_video.errors import StylestreamError
from adaattn_video.settings import StylizerSettingError

MIN_SIDE = settings.MIN_SIDE


class OptionValueError(StylestreamError, ValueError):
    """A flag or config-file value that cannot be used."""


def parse_wh(value: Any, name: str = "size") -> tuple[int, int] | None:
    """``"WxH"`` (``640x360``) or a YAML ``[W, H]`` -> (height, width); None stays None."""
    if value is None:
        return None
    try:
        return settings.parse_wh(value)
    except StylizerSettingError as err:
        raise OptionValueError(f"{name}: {err}") from err


def wh(value: Any) -> tuple[int, int]:
    """``option(parse=wh)``: ``WxH`` or ``[W, H]`` -> (height, width)."""
    return settings.parse_wh(value)


def format_wh(size: tuple[int, int]) -> str:
    """The inverse of :func:`wh`: (height, width) -> ``WxH``."""
    return f"{size[1]}x{size[0]}"


def wh_list(value: Any) -> tuple[tuple[int, int], ...]:
    """``option(parse=wh_list)``: ``640x360 1280x720`` (flags) or a YAML list -> sizes."""
    items = value.split() if isinstance(value, str) else value
    if not isinstance(items, (list, tuple)):
        raise ValueError(f"expected a list of WxH sizes, got {value!r}")
    return tuple(settings.parse_wh(item) for item in items)


def format_wh_list(sizes: tuple[tuple[int, int], ...]) -> list[str]:
    return [f"{w}x{h}" for h, w in sizes]


def items(value: Any) -> tuple[Any, ...]:
    """``option(parse=items)``: one value or a list of them -> a tuple (items unconverted:
    e.g. regions, given as ``style=A,mask=B`` strings or YAML mappings)."""
    if isinstance(value, (list, tuple)):
        return tuple(value)
    return (value,)
