"""``--output-option KEY=VALUE``: the H.264 encoder settings of the network and HLS outputs.

The command line and YAML name a few well-known settings (the defaults are
:class:`~streamer.outputs.av_connection.EncoderSettings`' and stay as they are without the
option): ``codec``, ``preset``, ``tune``, ``bitrate`` (bits/s; ``k``/``M`` suffixes; 0 = constant
quality), ``crf``, ``gop`` (seconds between keyframes). Every key and value is checked when the
config is built: an unknown key or a bad value is one line before anything starts.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import replace
from typing import Any

from configkit.errors import StylestreamError
from streamer.outputs.av_connection import EncoderSettings

X264_PRESETS = (
    "ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow", "slower",
    "veryslow", "placebo",
)  # fmt: skip
X264_TUNES = (
    "none", "zerolatency", "film", "animation", "grain", "stillimage", "fastdecode", "psnr",
    "ssim",
)  # fmt: skip


class OutputOptionError(StylestreamError, ValueError):
    """An ``--output-option`` is unknown or its value unusable."""


def _choice(choices: tuple[str, ...]) -> Callable[[str], str]:
    def check(value: str) -> str:
        if value not in choices:
            raise ValueError(f"expected one of {', '.join(choices)}")
        return value

    return check


def _bitrate(value: str) -> int:
    text = value.strip().lower()
    scale = {"k": 1_000, "m": 1_000_000}.get(text[-1:], 1)
    number = float(text[:-1] if scale > 1 else text)
    if number < 0:
        raise ValueError("expected bits per second >= 0 (e.g. 2500k, 6M; 0: constant quality)")
    return round(number * scale)


def _crf(value: str) -> int:
    crf = int(value)
    if not 0 <= crf <= 51:
        raise ValueError("expected 0-51")
    return crf


def _gop(value: str) -> float:
    seconds = float(value)
    if not 0 < seconds <= 60:
        raise ValueError("expected seconds in (0, 60]")
    return seconds


# key -> (EncoderSettings field, value parser)
KEYS: dict[str, tuple[str, Callable[[str], Any]]] = {
    "codec": ("codec", str),
    "preset": ("preset", _choice(X264_PRESETS)),
    "tune": ("tune", _choice(X264_TUNES)),
    "bitrate": ("bitrate", _bitrate),
    "crf": ("crf", _crf),
    "gop": ("gop_s", _gop),
}


def _pairs(value: Any) -> list[tuple[str, str]]:
    if isinstance(value, Mapping):
        return [(str(k), str(v)) for k, v in value.items()]
    items = [value] if isinstance(value, str) else list(value)
    pairs = []
    for item in items:
        key, eq, text = str(item).partition("=")
        if not eq or not key.strip() or not text.strip():
            raise OutputOptionError(f"expected KEY=VALUE (e.g. preset=fast), got {item!r}")
        pairs.append((key.strip(), text.strip()))
    return pairs


def parse_output_options(value: Any) -> tuple[str, ...]:
    """``"preset=fast"``, a list of such, or a YAML mapping -> checked ``("key=value", ...)``.

    Raises:
        OutputOptionError: an unknown key, a bad value, or the codec is not in this FFmpeg.
    """
    pairs = _pairs(value)
    encoder_settings(f"{k}={v}" for k, v in pairs)  # check every key and value now
    return tuple(f"{k}={v}" for k, v in pairs)


def encoder_settings(options: Iterable[str]) -> EncoderSettings:
    """The encoder settings with ``options`` (``"key=value"``, checked) applied over the
    defaults; the last of a key repeated wins."""
    changes: dict[str, Any] = {}
    for item in options:
        key, _, text = item.partition("=")
        if key not in KEYS:
            raise OutputOptionError(f"unknown key {key!r}; expected one of {', '.join(KEYS)}")
        name, convert = KEYS[key]
        try:
            changes[name] = convert(text)
        except ValueError as err:
            message = str(err) if str(err).startswith("expected") else "not a number"
            raise OutputOptionError(f"{key}={text}: {message}") from err
    try:
        return replace(EncoderSettings(), **changes)
    except StylestreamError as err:
        raise OutputOptionError(str(err)) from err


__all__ = ["KEYS", "OutputOptionError", "encoder_settings", "parse_output_options"]
