"""Option values shared by every command: the same checks for a flag and for a YAML key, so a
bad value gives the same one-line error wherever it came from."""

from __future__ import annotations

import argparse
import math
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
    """``args.<name>`` as ``kind`` (bool, int, float or str). Flags are typed by argparse already;
    values from a YAML file arrive as YAML typed them and are checked here."""
    value = getattr(args, name)
    if value is None and optional:
        return None
    if kind is bool:
        if not isinstance(value, bool):
            raise OptionValueError(f"{name}: expected true or false, got {value!r}")
        return value
    try:
        if kind in (int, float) and isinstance(value, (bool, list, dict)):
            raise TypeError
        if kind is int and isinstance(value, float) and not value.is_integer():
            raise ValueError
        result = kind(value)
        if kind is float and not math.isfinite(result):
            raise ValueError
        return result
    except (TypeError, ValueError, OverflowError) as err:
        what = {int: "a whole number", float: "a finite number", str: "a string"}[kind]
        raise OptionValueError(f"{name}: expected {what}, got {value!r}") from err


def float_list(value: Any, name: str) -> tuple[float, ...] | None:
    """A flag's list or a YAML number/list -> floats; None stays None."""
    if value is None:
        return None
    items = value if isinstance(value, (list, tuple)) else [value]
    try:
        if any(isinstance(v, bool) for v in items):
            raise TypeError
        numbers = tuple(float(v) for v in items)
        if not all(math.isfinite(n) for n in numbers):
            raise ValueError
        return numbers
    except (TypeError, ValueError, OverflowError) as err:
        raise OptionValueError(f"{name}: expected numbers, got {value!r}") from err
