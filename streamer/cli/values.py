"""Option values shared by every command: the same checks for a flag and for a YAML key, so a
bad value gives the same one-line error wherever it came from."""

from __future__ import annotations

import argparse
from typing import Any

from adaattn_video import settings
from adaattn_video.errors import StylestreamError
from adaattn_video.settings import StylizerSettingError
from configkit.convert import convert_value

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


def wh_arg(text: str) -> tuple[int, int]:
    """argparse type for ``--size WxH`` -> (height, width)."""
    try:
        size = parse_wh(text)
    except OptionValueError as err:
        raise argparse.ArgumentTypeError(str(err).split(": ", 1)[1]) from err
    assert size is not None
    return size


def positive_int(text: str) -> int:
    """argparse type for counts (>= 1)."""
    try:
        value = int(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from err
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def typed_value(args: argparse.Namespace, name: str, kind: type, *, optional: bool = False) -> Any:
    """``args.<name>`` as ``kind`` (bool, int, float or str) by the one converter
    (:func:`configkit.convert.convert_value`): flags arrive as strings, YAML values as YAML
    typed them; NaN and infinity are refused."""
    hint: Any = (kind | None) if optional else kind
    return convert_value(name, getattr(args, name), hint, source="", error=OptionValueError)


def float_list(value: Any, name: str) -> tuple[float, ...] | None:
    """A flag's list or a YAML number/list -> finite floats; None stays None."""
    if value is None:
        return None
    items = list(value) if isinstance(value, (list, tuple)) else [value]
    return convert_value(name, items, tuple[float, ...], source="", error=OptionValueError)
