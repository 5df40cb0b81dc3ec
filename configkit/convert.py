"""Typed mappings -> frozen dataclasses: the one converter every config goes through.

YAML files, command-line flags (strings), ``KEY=VALUE`` overrides, saved JSON configs and the
model config in a checkpoint all arrive as a mapping of names to loosely typed values. This
module turns such a mapping into a dataclass by the fields' type hints, so a bad value gives the
same one-line message wherever it came from::

    spec = from_mapping(StylizerSpec, {"style": ["a.jpg"], "alpha": "0.8"}, source="flags")

Field metadata (see :func:`option`) says how a field is named on the command line and in YAML
(``flag``), documents it (``help``), and may give a custom ``parse`` function. A field whose
type is a dataclass and whose metadata has ``flatten=True`` takes its own fields' keys from the
same flat mapping (a render config's ``style``/``device`` keys fill its ``StylizerSpec``).

Supported hints: ``bool``, ``int``, ``float`` (finite only: NaN and infinity are refused),
``str``, ``Literal[...]``, ``X | None``, ``tuple[X, ...]`` / ``tuple[X, Y]``, ``dict[str, str]``
and ``Mapping[str, str]``, ``Any``, and flattened dataclasses.
"""

from __future__ import annotations

import dataclasses
import math
import types
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any, Literal, TypeVar, Union, get_args, get_origin, get_type_hints

from configkit.errors import StylestreamError

T = TypeVar("T")

_NULLS = ("null", "none", "~", "")
_TRUE = ("true", "yes", "on", "1")
_FALSE = ("false", "no", "off", "0")


class ConfigError(StylestreamError, ValueError):
    """A config file, flag or override is malformed, has an unknown key or a bad value."""


ROLES = ("input", "output", "declared", "none")


def option(
    default: Any = dataclasses.MISSING,
    help: str = "",
    *,
    flag: str | None = None,
    metavar: str | None = None,
    parse: Callable[[Any], Any] | None = None,
    format: Callable[[Any], Any] | None = None,
    flatten: bool = False,
    default_factory: Any = dataclasses.MISSING,
    check: Callable[[Any], None] | None = None,
    cli: bool = True,
    positional: bool = False,
    short: str | None = None,
    repeat: bool = False,
    const: Any = None,
    role: str | None = None,
) -> Any:
    """A dataclass field with the metadata the converter and the flag generator read.

    Args:
        help: one line for ``--help`` and the docs.
        flag: the CLI/YAML name when it differs from the field name (``start`` for ``start_s``).
        metavar: the placeholder shown in ``--help``.
        parse: ``value -> converted value`` for values the type hint cannot describe
            (``640x360``); raise ``ValueError``/``TypeError`` with a message on a bad value.
        format: the inverse of ``parse`` for :func:`to_mapping` (``(360, 640)`` -> ``640x360``).
        flatten: a dataclass-typed field filled from the same flat mapping.
        check: ``converted value -> None``, raising ``ValueError`` with a message when the
            value cannot be used (see :mod:`configkit.checks`); run by the converter on every
            non-null value, wherever it came from.
        cli: False for a key that only a YAML file (or code) sets: no flag is generated.
        positional: the flag is a positional argument (``image CONTENT``).
        short: a one-letter alias of the flag (``-o``).
        repeat: a list given by repeating the flag (``--style A --style B``), not by
            ``--flag A B``.
        const: the value of the flag given without a value (``--ray`` = ``--ray local``).
        role: what a path-like field holds (one of :data:`ROLES`): ``"input"`` a path the
            command reads, ``"output"`` a path it writes (both collected and checked by
            :func:`streamer.guard.guard_declared`), ``"declared"`` paths inside a structured
            value (region specs) that the config's ``io_paths()`` lists, ``"none"`` no file of
            this machine the command reads or writes (a URL, an endpoint, a scratch folder).
            Every path-like field of a command declares one (a test walks the command table).
    """
    if role is not None and role not in ROLES:
        raise ValueError(f"role must be one of {ROLES}, got {role!r}")
    metadata = {
        "help": help, "flag": flag, "metavar": metavar, "parse": parse, "format": format,
        "flatten": flatten, "check": check, "cli": cli, "positional": positional,
        "short": short, "repeat": repeat, "const": const, "role": role,
    }  # fmt: skip
    if default_factory is not dataclasses.MISSING:
        return dataclasses.field(default_factory=default_factory, metadata=metadata)
    return dataclasses.field(default=default, metadata=metadata)


_SAME: Any = object()


def option_like(cls: type, name: str, default: Any = _SAME, help: str | None = None) -> Any:
    """The option of field ``cls.name`` (flag, help, parse, check...) declared once and reused
    by another config, with another default or help where given."""
    field = next(f for f in dataclasses.fields(cls) if f.name == name)
    meta = dict(field.metadata)
    if help is not None:
        meta["help"] = help
    if default is not _SAME:
        return dataclasses.field(default=default, metadata=meta)
    if field.default_factory is not dataclasses.MISSING:  # type: ignore[misc]
        return dataclasses.field(default_factory=field.default_factory, metadata=meta)
    return dataclasses.field(default=field.default, metadata=meta)


def key_of(field: dataclasses.Field) -> str:
    """The YAML key / flag name (without ``--``, with ``_``) of ``field``."""
    return (field.metadata.get("flag") or field.name).replace("-", "_")


def _norm(key: Any) -> str:
    return str(key).replace("-", "_")


def iter_keys(cls: type) -> Iterator[tuple[str, dataclasses.Field, type]]:
    """(key, field, owner class) for every key ``cls`` accepts, flattened fields expanded."""
    hints = get_type_hints(cls)
    for field in dataclasses.fields(cls):
        if field.metadata.get("flatten"):
            yield from iter_keys(hints[field.name])
        else:
            yield key_of(field), field, cls


def defaults_of(cls: type, base: Any = None) -> dict[str, Any]:
    """key -> the value a config gets when the key is not given (``dataclasses.MISSING``
    when required): the field's default, or the flattened field's default instance's value."""
    hints = get_type_hints(cls)
    result: dict[str, Any] = {}
    for field in dataclasses.fields(cls):
        if field.metadata.get("flatten"):
            inner = field.default if dataclasses.is_dataclass(field.default) else None
            result.update(
                defaults_of(hints[field.name], inner if base is None else getattr(base, field.name))
            )
        elif base is not None:
            result[key_of(field)] = getattr(base, field.name)
        elif field.default_factory is not dataclasses.MISSING:  # type: ignore[misc]
            result[key_of(field)] = field.default_factory()  # type: ignore[misc]
        else:
            result[key_of(field)] = field.default
    return result


def known_keys(cls: type) -> list[str]:
    return sorted(key for key, _, _ in iter_keys(cls))


def check_keys(cls: type, data: Mapping[Any, Any], source: str, error: type = ConfigError) -> None:
    """Raise ``error`` naming every key of ``data`` that ``cls`` does not accept."""
    known = set(known_keys(cls)) | {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(str(k) for k in data if _norm(k) not in known)
    if unknown:
        raise error(
            f"{_where(source)}unknown key(s) {unknown}; known keys: {', '.join(sorted(known))}"
        )


def from_mapping(
    cls: type[T], data: Mapping[Any, Any], *, source: str = "config", error: type = ConfigError
) -> T:
    """Build ``cls`` from ``data`` (keys: flag names or field names, ``-`` or ``_``).

    Missing keys keep the field defaults. Every value is converted by the field's hint (or its
    ``parse``); a bad value, an unknown key or a failing ``__post_init__`` check raises
    ``error`` (a :class:`StylestreamError`) with ``source`` in the message.
    """
    if not isinstance(data, Mapping):
        raise error(
            f"{_where(source)}expected a mapping of keys to values, got {type(data).__name__}"
        )
    check_keys(cls, data, source, error)
    values = {_norm(k): v for k, v in data.items()}
    return _build(cls, values, source, error)


def _build(cls: type[T], values: dict[str, Any], source: str, error: type, base: Any = None) -> T:
    """``cls`` from ``values``; a key it lacks keeps ``base``'s value (the default instance of
    a flattened field: ``serve`` publishes with ``send_hwm`` 32, ``live`` with 8), else the
    field's default."""
    hints = get_type_hints(cls)
    kwargs: dict[str, Any] = {}
    for field in dataclasses.fields(cls):
        if field.metadata.get("flatten"):
            inner = field.default if dataclasses.is_dataclass(field.default) else None
            if base is not None:
                inner = getattr(base, field.name)
            kwargs[field.name] = _build(hints[field.name], values, source, error, inner)
            continue
        key = key_of(field)
        name = key if key in values else field.name if field.name in values else None
        if name is None:
            if base is not None:
                kwargs[field.name] = getattr(base, field.name)
            elif field.default is dataclasses.MISSING and (
                field.default_factory is dataclasses.MISSING
            ):
                raise error(f"{_where(source)}{key}: a value is required")
            continue
        kwargs[field.name] = convert_field(field, hints[field.name], values[name], source, error)
    try:
        return cls(**kwargs)
    except StylestreamError:
        raise
    except (ValueError, TypeError) as err:
        raise error(f"{_where(source)}{err}") from err


def convert_field(
    field: dataclasses.Field, hint: Any, value: Any, source: str, error: type = ConfigError
) -> Any:
    """``value`` converted for ``field`` (its ``parse`` when set, else by ``hint``), then
    checked by its ``check`` (a null value is never checked)."""
    converted = _convert_field(field, hint, value, source, error)
    run_check(field, converted, source, error)
    return converted


def run_check(field: dataclasses.Field, value: Any, source: str = "", error: type = ConfigError):
    """Run ``field``'s ``check`` on ``value`` (not on None): ``KEY must be > 0, got -1``."""
    check = field.metadata.get("check")
    if check is None or value is None:
        return
    try:
        check(value)
    except (ValueError, TypeError) as err:
        raise error(f"{_where(source)}{key_of(field)} {err}") from err


def check_fields(config: Any, error: type = ConfigError) -> None:
    """Run every field's ``check`` on a built dataclass (its ``__post_init__`` calls this, so
    a config made in code is checked like one made from a mapping)."""
    for field in dataclasses.fields(config):
        if not field.metadata.get("flatten"):
            run_check(field, getattr(config, field.name), "", error)


def _convert_field(
    field: dataclasses.Field, hint: Any, value: Any, source: str, error: type
) -> Any:
    parse = field.metadata.get("parse")
    key = key_of(field)
    if parse is None:
        return convert_value(key, value, hint, source, error)
    if value is None or (isinstance(value, str) and value.strip().lower() in _NULLS[:3]):
        optional, _ = split_optional(hint)
        if optional:
            return None
    try:
        return parse(value)
    except StylestreamError as err:
        raise error(f"{_where(source)}{key}: {err}") from err
    except (ValueError, TypeError, OverflowError) as err:
        raise error(f"{_where(source)}{key}: {err}") from err


def split_optional(hint: Any) -> tuple[bool, Any]:
    if get_origin(hint) in (Union, types.UnionType):
        args = [a for a in get_args(hint) if a is not type(None)]
        if len(args) != len(get_args(hint)):
            return True, args[0] if len(args) == 1 else Union[tuple(args)]  # noqa: UP007
    return False, hint


def type_name(hint: Any) -> str:
    """Words for what ``hint`` accepts ("an integer", "one of 'a', 'b'", "a list or null")."""
    optional, hint = split_optional(hint)
    origin = get_origin(hint)
    if origin is Literal:
        text = "one of " + ", ".join(repr(a) for a in get_args(hint))
    elif origin is tuple:
        text = "a list"
    elif origin in (dict, Mapping):
        text = "a mapping"
    else:
        text = {bool: "true/false", int: "an integer", float: "a number", str: "a string"}.get(
            hint, str(hint)
        )
    return f"{text} or null" if optional else text


def convert_value(
    name: str, value: Any, hint: Any, source: str = "config", error: type = ConfigError
) -> Any:
    """Convert a YAML/flag value to ``hint``; raise ``error`` ("SOURCE: NAME: expected X, got
    Y"; no ``SOURCE: `` when ``source`` is empty)."""
    optional, inner = split_optional(hint)
    if value is None or (optional and isinstance(value, str) and value.strip().lower() in _NULLS):
        if optional:
            return None
        raise error(f"{_where(source)}{name}: must not be null")
    try:
        return _convert(name, value, inner, source, error)
    except StylestreamError:  # an item of a list, already named
        raise
    except (ValueError, TypeError, OverflowError) as err:
        raise error(f"{_where(source)}{name}: expected {type_name(hint)}, got {value!r}") from err


def _where(source: str) -> str:
    return f"{source}: " if source else ""


def _convert(name: str, value: Any, hint: Any, source: str, error: type) -> Any:
    origin = get_origin(hint)
    if hint is Any:
        return value
    if origin is Literal:
        choices = get_args(hint)
        if isinstance(value, str) and value.strip() in choices:
            return value.strip()
        if value not in choices or isinstance(value, bool) != isinstance(choices[0], bool):
            raise ValueError
        return value
    if origin in (Union, types.UnionType):  # e.g. int | tuple[int, int]: first that fits
        for arg in get_args(hint):
            try:
                return _convert(name, value, arg, source, error)
            except (ValueError, TypeError, OverflowError, StylestreamError):
                continue
        raise ValueError
    if origin is tuple:
        items = value.split(",") if isinstance(value, str) else value
        if not isinstance(items, (list, tuple)):
            raise TypeError
        args = get_args(hint)
        kinds = [args[0]] * len(items) if len(args) == 2 and args[1] is Ellipsis else list(args)
        if len(kinds) != len(items):
            raise ValueError
        return tuple(
            convert_value(name, v.strip() if isinstance(v, str) else v, k, source, error)
            for v, k in zip(items, kinds, strict=True)
        )
    if origin in (dict, Mapping) or hint in (dict, Mapping):
        if not isinstance(value, Mapping):
            raise TypeError
        return {str(k): str(v) for k, v in value.items()}
    if hint is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.strip().lower() in _TRUE + _FALSE:
            return value.strip().lower() in _TRUE
        raise ValueError
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, (int, float, str)):
            raise TypeError
        if isinstance(value, str):
            value = value.strip()
            try:
                return int(value)
            except ValueError:
                value = float(value)
        if isinstance(value, float) and not value.is_integer():
            raise ValueError
        return int(value)
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, (int, float, str)):
            raise TypeError
        number = float(value)
        if not math.isfinite(number):
            raise ValueError
        return number
    if hint is str:
        if isinstance(value, (str, Path)):
            return str(value)
        if isinstance(value, int) and not isinstance(value, bool):  # `source: 0` (a webcam)
            return str(value)
        raise TypeError
    if dataclasses.is_dataclass(hint) and isinstance(value, Mapping):
        return from_mapping(hint, value, source=source, error=error)
    raise TypeError(f"unsupported type {hint}")


def to_mapping(config: Any) -> dict[str, Any]:
    """A dataclass -> a JSON/YAML-ready flat mapping keyed like :func:`from_mapping` reads it
    (tuples become lists, flattened fields are merged in)."""
    result: dict[str, Any] = {}
    for field in dataclasses.fields(config):
        value = getattr(config, field.name)
        if field.metadata.get("flatten"):
            result.update(to_mapping(value))
            continue
        if field.metadata.get("format") is not None and value is not None:
            value = field.metadata["format"](value)
        elif isinstance(value, tuple):
            value = [list(v) if isinstance(v, tuple) else v for v in value]
        elif isinstance(value, Mapping):
            value = dict(value)
        result[key_of(field)] = value
    return result


__all__ = [
    "ROLES",
    "ConfigError",
    "check_fields",
    "check_keys",
    "convert_field",
    "convert_value",
    "defaults_of",
    "from_mapping",
    "iter_keys",
    "key_of",
    "known_keys",
    "option",
    "option_like",
    "run_check",
    "split_optional",
    "to_mapping",
    "type_name",
]
