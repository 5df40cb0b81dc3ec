"""Option values shared by every command: the same checks for a flag and for a YAML key, so a
bad value gives the same one-line error wherever it came from."""

from __future__ import annotations

import argparse
from typing import Any

from adaattn_video.errors import StylestreamError

MIN_SIDE = 16


class OptionValueError(StylestreamError, ValueError):
    """A flag or config-file value that cannot be used."""


def parse_wh(value: Any, name: str = "size") -> tuple[int, int] | None:
    """``"WxH"`` (``640x360``) or a YAML ``[W, H]`` -> (height, width); None stays None."""
    if value is None:
        return None
    try:
        if isinstance(value, (list, tuple)):
            width, height = (int(v) for v in value)
        else:
            width, height = (int(v) for v in str(value).lower().split("x"))
    except (TypeError, ValueError) as err:
        raise OptionValueError(f"{name}: expected WxH such as 640x360, got {value!r}") from err
    if min(width, height) < MIN_SIDE:
        raise OptionValueError(f"{name}: expected sides >= {MIN_SIDE} pixels, got {width}x{height}")
    return height, width


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
        return kind(value)
    except (TypeError, ValueError) as err:
        what = {int: "a whole number", float: "a number", str: "a string"}[kind]
        raise OptionValueError(f"{name}: expected {what}, got {value!r}") from err


def float_list(value: Any, name: str) -> tuple[float, ...] | None:
    """A flag's list or a YAML number/list -> floats; None stays None."""
    if value is None:
        return None
    items = value if isinstance(value, (list, tuple)) else [value]
    try:
        if any(isinstance(v, bool) for v in items):
            raise TypeError
        return tuple(float(v) for v in items)
    except (TypeError, ValueError) as err:
        raise OptionValueError(f"{name}: expected numbers, got {value!r}") from err
