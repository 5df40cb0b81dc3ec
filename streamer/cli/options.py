"""Flags generated from a config dataclass, and the namespace -> config conversion.

A command adds its options with :func:`add_dataclass_options` (one ``--flag`` per field, named,
documented and typed by the field's :func:`~configkit.convert.option` metadata) and builds
its config with :func:`config_from_args`. Flags are parsed as plain strings and converted by the
same :func:`~configkit.convert.from_mapping` as YAML values, so a bad value gives the same
one-line error whether it came from a flag or from ``--config``.
"""

from __future__ import annotations

import argparse
import dataclasses
from collections.abc import Iterable, Mapping
from typing import Any, Literal, get_args, get_origin

from configkit.convert import ConfigError, from_mapping, iter_keys, split_optional
from streamer.cli.values import OptionValueError

# Fields the command line never sets (programmatic only).
NOT_FLAGS = ("max_queue_frames", "codec_options", "ffmpeg_options", "embedded")


class ReplaceAppend(argparse.Action):
    """``action="append"`` whose first use on the command line replaces a list that came from
    ``--config`` (plain ``append`` would add to the YAML list: flags must override the file)."""

    def __call__(self, parser, namespace, values, option_string=None):  # type: ignore[override]
        flag = f"_{self.dest}_from_flags"
        items = list(getattr(namespace, self.dest) or []) if getattr(namespace, flag, False) else []
        items.append(values)
        setattr(namespace, self.dest, items)
        setattr(namespace, flag, True)


def add_dataclass_options(
    parser: argparse.ArgumentParser | argparse._ArgumentGroup,
    cls: type,
    *,
    only: Iterable[str] | None = None,
    skip: Iterable[str] = (),
    defaults: Mapping[str, Any] | None = None,
    help_overrides: Mapping[str, str] | None = None,
) -> list[str]:
    """Add one ``--flag`` per key of ``cls`` (flattened fields included); returns the keys.

    Values stay strings (``None`` when not given) until :func:`config_from_args`. ``defaults``
    replaces a field's default for this command (shown in ``--help`` and used when neither a
    flag nor the YAML file gives the key).
    """
    wanted = None if only is None else set(only)
    skipped = set(skip) | set(NOT_FLAGS)
    defaults = dict(defaults or {})
    keys = []
    for key, field, owner in iter_keys(cls):
        if key in skipped or (wanted is not None and key not in wanted):
            continue
        hint = _hint(owner, field.name)
        default = defaults.get(key, field.default)
        if default is dataclasses.MISSING:
            default = None
        help_text = (help_overrides or {}).get(key) or field.metadata.get("help") or ""
        _add(parser, key, hint, default, help_text, field.metadata.get("metavar"))
        keys.append(key)
    parser.set_defaults(**{key: _flag_default(defaults[key]) for key in keys if key in defaults})
    return keys


def _hint(owner: type, name: str) -> Any:
    from typing import get_type_hints

    return get_type_hints(owner)[name]


def _flag_default(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value


def _add(parser: Any, key: str, hint: Any, default: Any, help_text: str, metavar: str | None):
    flag = "--" + key.replace("_", "-")
    _, inner = split_optional(hint)
    shown = "" if default in (None, (), False) else f" (default {_show(default)})"
    if inner is bool:
        if default:
            parser.add_argument(
                flag, dest=key, action=argparse.BooleanOptionalAction, default=None,
                help=f"{help_text} (default on)",
            )  # fmt: skip
        else:
            parser.add_argument(flag, dest=key, action="store_true", default=None, help=help_text)
        return
    if get_origin(inner) is Literal:
        choices = [str(c) for c in get_args(inner)]
        parser.add_argument(flag, dest=key, choices=choices, default=None, help=help_text + shown)
        return
    if get_origin(inner) is tuple and key == "style":
        parser.add_argument(
            flag, dest=key, action=ReplaceAppend, default=None, metavar=metavar, help=help_text
        )
        return
    if get_origin(inner) is tuple and get_args(inner)[-1] is Ellipsis:
        parser.add_argument(
            flag, dest=key, nargs="+", default=None, metavar=metavar or "X", help=help_text + shown
        )
        return
    parser.add_argument(flag, dest=key, default=None, metavar=metavar, help=help_text + shown)


def _show(value: Any) -> str:
    if isinstance(value, tuple) and len(value) == 2 and all(isinstance(v, int) for v in value):
        return f"{value[1]}x{value[0]}"
    return str(value)


def namespace_values(args: argparse.Namespace, keys: Iterable[str]) -> dict[str, Any]:
    """The values of ``keys`` that a flag or the YAML file gave (None = not given)."""
    return {k: getattr(args, k) for k in keys if getattr(args, k, None) is not None}


def config_from_args(
    cls: type, args: argparse.Namespace, *, extra: Mapping[str, Any] | None = None,
    keys: Iterable[str] | None = None, error: type = OptionValueError,
) -> Any:  # fmt: skip
    """``cls`` from the parsed flags (and YAML defaults) of its keys (or only ``keys``, the
    ones this command has), plus ``extra`` values."""
    if keys is None:
        keys = [key for key, _, _ in iter_keys(cls)]
    values = namespace_values(args, keys)
    values.update(extra or {})
    try:
        return from_mapping(cls, values, source="", error=error)
    except ConfigError as err:  # pragma: no cover - from_mapping raises ``error`` itself
        raise error(str(err)) from err


__all__ = [
    "NOT_FLAGS",
    "ReplaceAppend",
    "add_dataclass_options",
    "config_from_args",
    "namespace_values",
]
