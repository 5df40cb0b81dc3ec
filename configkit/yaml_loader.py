"""The one YAML loader for config files (``--config`` of every command, ``train``'s config) and
``KEY=VALUE`` values.

Config files are small, hand-written mappings, so the loader refuses what only an attack or a
mistake needs:

- anchors and aliases (``&a`` / ``*a``): nested aliases expand exponentially ("billion laughs":
  a few hundred bytes become gigabytes); the loader never expands one;
- a repeated key (``style_size`` twice): PyYAML keeps the last silently; here it is an error
  naming the key;
- files over :data:`MAX_CONFIG_BYTES`, directories, unreadable or non-UTF-8 files, nesting
  deeper than :data:`MAX_DEPTH`.

Every failure is a one-line :class:`~configkit.convert.ConfigError`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from configkit.convert import ConfigError

MAX_CONFIG_BYTES = 1 << 20  # 1 MiB: far above any real config, far below trouble
MAX_DEPTH = 64


class _ConfigLoader(yaml.SafeLoader):
    """SafeLoader without anchors/aliases, refusing repeated keys and deep nesting."""

    _depth = 0

    def compose_node(self, parent: Any, index: Any) -> Any:  # type: ignore[override]
        event = self.peek_event()
        if isinstance(event, yaml.AliasEvent) or getattr(event, "anchor", None) is not None:
            mark = event.start_mark
            raise ConfigError(
                f"line {mark.line + 1}: YAML anchors and aliases (&name / *name) are not allowed "
                "in config files; write the value out"
            )
        self._depth += 1
        try:
            if self._depth > MAX_DEPTH:
                raise ConfigError(f"nested deeper than {MAX_DEPTH} levels")
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1

    def construct_mapping(self, node: Any, deep: bool = False) -> dict:  # type: ignore[override]
        seen: set[Any] = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            try:
                repeated = key in seen
                seen.add(key)
            except TypeError:  # unhashable: the base class reports it
                continue
            if repeated:
                raise ConfigError(
                    f"line {key_node.start_mark.line + 1}: key {key!r} appears more than once; "
                    "keep one"
                )
        return super().construct_mapping(node, deep=deep)


def parse_yaml_text(text: str, where: str = "config") -> Any:
    """The value of YAML ``text`` (anchors, aliases, repeated keys refused).

    Raises :class:`ConfigError` naming ``where`` for every problem, including PyYAML's own
    errors and values its constructors cannot build (e.g. a date such as ``2024-13-01``).
    """
    if len(text) > MAX_CONFIG_BYTES:
        raise ConfigError(f"{where}: larger than {MAX_CONFIG_BYTES} bytes; not a config")
    try:
        return yaml.load(text, Loader=_ConfigLoader)  # a SafeLoader subclass
    except ConfigError as err:
        raise ConfigError(f"{where}: {err}") from err
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        line = f" (line {mark.line + 1}, column {mark.column + 1})" if mark else ""
        problem = getattr(err, "problem", None) or "syntax error"
        raise ConfigError(f"{where} is not valid YAML{line}: {problem}") from err
    except (ValueError, TypeError, OverflowError, RecursionError) as err:
        raise ConfigError(f"{where}: a value cannot be read ({type(err).__name__}: {err})") from err


def load_yaml_file(path: str | Path) -> dict[str, Any]:
    """The top-level mapping of the YAML file at ``path`` (an empty file is ``{}``)."""
    path = Path(path).expanduser()
    where = f"config file {path}"
    try:
        with path.open("rb") as handle:
            raw = handle.read(MAX_CONFIG_BYTES + 1)
    except FileNotFoundError as err:
        raise ConfigError(f"{where} does not exist") from err
    except IsADirectoryError as err:
        raise ConfigError(f"{where} is a directory; give a YAML file") from err
    except OSError as err:
        raise ConfigError(f"{where} cannot be read ({err.strerror or err})") from err
    if len(raw) > MAX_CONFIG_BYTES:
        raise ConfigError(f"{where} is larger than {MAX_CONFIG_BYTES} bytes; not a config")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as err:
        raise ConfigError(f"{where} is not UTF-8 text") from err
    data = parse_yaml_text(text, where)
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(
            f"{where}: expected a mapping of keys to values, got {type(data).__name__}"
        )
    return data


def parse_overrides(items: list[str] | tuple[str, ...]) -> dict[str, Any]:
    """``["lr=2e-4", "similarity_taps=[relu3_1, relu4_1]"]`` -> a mapping (values YAML-parsed)."""
    result: dict[str, Any] = {}
    for item in items:
        key, sep, text = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"override must look like key=value, got {item!r}")
        value = parse_yaml_text(text, f"override {item!r}") if text.strip() else ""
        result[key.strip()] = value
    return result


__all__ = ["MAX_CONFIG_BYTES", "load_yaml_file", "parse_overrides", "parse_yaml_text"]
