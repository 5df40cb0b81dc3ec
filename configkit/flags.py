"""Command lines generated from config dataclasses: one table of commands, one way to parse.

Each command is declared once as a :class:`Command` (its words, its config dataclass, its run
function); :func:`build_parser` turns a table of them into an ``argparse`` parser whose flags
come from the fields' :func:`~configkit.convert.option` metadata, and
:func:`command_and_config` builds the command's config from, in this order (later wins, see
:mod:`configkit.merge`):

1. the command's own defaults (``Command.defaults``: e.g. ``style_size: None`` for ``image``),
2. the YAML file of ``--config FILE`` (an ordinary option; the file is read after parsing, by
   the safe loader :func:`configkit.yaml_loader.load_yaml_file`),
3. the flags given on the command line.

A flag that is not given is absent (``default=argparse.SUPPRESS``), never ``None``, so a YAML
``null`` or a command default of ``None`` reaches the config like any other value. Every value
is converted and checked by the one converter, :func:`configkit.convert.from_mapping`.
"""

from __future__ import annotations

import argparse
import dataclasses
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, Literal, get_args, get_origin, get_type_hints

from configkit.convert import ConfigError, defaults_of, from_mapping, iter_keys, split_optional
from configkit.merge import merge, normalize_key
from configkit.yaml_loader import load_yaml_file

# The key of a command config that receives the --config path (set by the parser, never YAML).
CONFIG_FILE_KEY = "config_file"


@dataclasses.dataclass(frozen=True)
class Command:
    """One command of the table: ``stylestream PATH... [FLAGS]``.

    Attributes:
        path: the words that select it (``("bench", "model")``).
        config: the frozen dataclass its flags, YAML keys and run function use.
        run: ``config -> exit code``.
        help / description: for ``--help`` (the description defaults to ``help``).
        defaults: this command's defaults where they differ from the dataclass's (shown in
            ``--help``; the first layer of :func:`configkit.merge.merge`).
        help_overrides: flag help that differs for this command.
        prepare: ``merged mapping -> mapping`` before conversion, for values made from
            others (``train``'s ``KEY=VALUE`` overrides, ``serve``'s ``--stream NAME=SOURCE``).
        error: the error class of a bad value (a ``StylestreamError``).
        config_file: whether it takes ``--config FILE.yaml``.
    """

    path: tuple[str, ...]
    config: type
    run: Callable[[Any], int]
    help: str
    description: str | None = None
    defaults: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    help_overrides: Mapping[str, str] = dataclasses.field(default_factory=dict)
    prepare: Callable[[dict[str, Any]], dict[str, Any]] | None = None
    error: type = ConfigError
    config_file: bool = True


@dataclasses.dataclass(frozen=True)
class Group:
    """A word that only leads to commands (``bench``, ``weights``, ``control``).

    ``options``: a dataclass of flags given before the sub-command (``control ENDPOINT``);
    the commands below flatten it into their own configs, and its optional flags may be given
    after the sub-command too.
    """

    path: tuple[str, ...]
    help: str
    description: str | None = None
    options: type | None = None
    metavar: str = "ACTION"


def _shown(default: Any, meta: Mapping[str, Any]) -> str:
    if default in (None, (), False, "", dataclasses.MISSING) or isinstance(default, Mapping):
        return ""
    if meta.get("format") is not None:
        default = meta["format"](default)
    if isinstance(default, (list, tuple)):
        default = " ".join(str(v) for v in default)
    return f" (default {default})"


def _argument(key: str, meta: Mapping[str, Any], hint: Any, default: Any, help_text: str):
    """(names, add_argument keywords) of one field; the value stays a string until converted."""
    flag = "--" + key.replace("_", "-")
    names = [key] if meta.get("positional") else [*filter(None, [meta.get("short")]), flag]
    kwargs: dict[str, Any] = {"default": argparse.SUPPRESS}
    if not meta.get("positional"):
        kwargs["dest"] = key
    _, inner = split_optional(hint)
    listed = get_origin(inner) is tuple and get_args(inner)[-1:] == (Ellipsis,)
    help_text = help_text.replace("%", "%%")
    if inner is bool and not meta.get("positional"):
        if default is True:
            kwargs["action"] = argparse.BooleanOptionalAction
            help_text += " (default on)"
        else:
            kwargs["action"] = "store_const"
            kwargs["const"] = True
        return names, {**kwargs, "help": help_text}
    if get_origin(inner) is Literal:
        kwargs["choices"] = [str(c) for c in get_args(inner)]
    else:
        kwargs["metavar"] = meta.get("metavar") or (key.upper() if meta.get("positional") else None)
    if meta.get("repeat"):
        kwargs["action"] = "append"
    elif listed:
        kwargs["nargs"] = "*" if meta.get("positional") else "+"
    elif meta.get("const") is not None:
        kwargs.update(nargs="?", const=meta["const"])
    elif meta.get("positional") and default is not dataclasses.MISSING:
        kwargs["nargs"] = "?"
    return names, {**kwargs, "help": help_text + _shown(default, meta)}


def add_flags(
    parser: argparse.ArgumentParser,
    cls: type,
    *,
    defaults: Mapping[str, Any] | None = None,
    help_overrides: Mapping[str, str] | None = None,
    skip: Iterable[str] = (),
) -> list[str]:
    """Add one argument per key of ``cls`` (flattened fields included, ``cli=False`` and
    ``skip`` keys left out); returns the keys. Nothing is set for a flag that is not given."""
    skipped = set(skip)
    defaults = {**defaults_of(cls), **{normalize_key(k): v for k, v in (defaults or {}).items()}}
    keys = []
    for key, field, owner in iter_keys(cls):
        meta = field.metadata
        if key in skipped or not meta.get("cli", True):
            continue
        default = defaults[key]
        help_text = (help_overrides or {}).get(key) or meta.get("help") or ""
        hint = get_type_hints(owner)[field.name]
        names, kwargs = _argument(key, meta, hint, default, help_text)
        parser.add_argument(*names, **kwargs)
        keys.append(key)
    return keys


def _positional_keys(cls: type | None) -> set[str]:
    if cls is None:
        return set()
    return {key for key, field, _ in iter_keys(cls) if field.metadata.get("positional")}


def build_parser(
    parser: argparse.ArgumentParser, groups: Sequence[Group], commands: Sequence[Command]
) -> argparse.ArgumentParser:
    """Add ``groups`` and ``commands`` (parents before children) to ``parser``."""
    parsers: dict[tuple[str, ...], argparse.ArgumentParser] = {(): parser}
    children: dict[tuple[str, ...], Any] = {}
    group_options: dict[tuple[str, ...], type | None] = {(): None}

    def subparsers(path: tuple[str, ...], metavar: str) -> Any:
        if path not in children:
            children[path] = parsers[path].add_subparsers(
                dest="_" + "_".join(("command", *path)), metavar=metavar, required=True
            )
        return children[path]

    for group in groups:
        parent = group.path[:-1]
        sub = subparsers(parent, "COMMAND" if not parent else "ACTION")
        made = sub.add_parser(
            group.path[-1], help=group.help, description=group.description or group.help
        )
        parsers[group.path] = made
        group_options[group.path] = group.options
        if group.options is not None:
            add_flags(made, group.options)
        subparsers(group.path, group.metavar)
    for command in commands:
        parent = command.path[:-1]
        made = subparsers(parent, "COMMAND").add_parser(
            command.path[-1], help=command.help, description=command.description or command.help
        )
        keys = add_flags(
            made, command.config, defaults=command.defaults,
            help_overrides=command.help_overrides,
            skip=(CONFIG_FILE_KEY, *_positional_keys(group_options.get(parent))),
        )  # fmt: skip
        keys += sorted(_positional_keys(group_options.get(parent)))
        if command.config_file:
            made.add_argument(
                "--config", action="append", default=argparse.SUPPRESS, metavar="FILE.yaml",
                help="read options from a YAML file (keys: the option names); flags override it",
            )  # fmt: skip
        made.set_defaults(_command=command, _keys=tuple(keys))
    return parser


def _file_layer(command: Command, paths: list[str]) -> tuple[dict[str, Any], str | None]:
    if not paths:
        return {}, None
    if len(paths) > 1:
        raise ConfigError(f"--config is given {len(paths)} times; give one YAML file")
    data = load_yaml_file(paths[0])
    known = {key for key, _, _ in iter_keys(command.config)} - {CONFIG_FILE_KEY}
    for key in data:
        if normalize_key(key) not in known:
            raise ConfigError(
                f"config file {paths[0]}: unknown key {key!r}; known keys: "
                + ", ".join(sorted(known))
            )
    return data, paths[0]


def command_and_config(namespace: argparse.Namespace) -> tuple[Command, Any]:
    """The command a parsed ``namespace`` selected and its config: the command's defaults <
    the ``--config`` YAML file < the flags given, converted by
    :func:`~configkit.convert.from_mapping` (every mistake: one ``StylestreamError``)."""
    command: Command = namespace._command
    flags = {key: getattr(namespace, key) for key in namespace._keys if hasattr(namespace, key)}
    from_file, path = _file_layer(command, getattr(namespace, "config", []))
    data = merge(command.defaults, from_file, flags)
    if path is not None and CONFIG_FILE_KEY in {key for key, _, _ in iter_keys(command.config)}:
        data[CONFIG_FILE_KEY] = path
    if command.prepare is not None:
        data = command.prepare(data)
    return command, from_mapping(command.config, data, source="", error=command.error)


def command_config(parser: argparse.ArgumentParser, argv: Sequence[str]) -> Any:
    """The config ``argv`` selects (parsed and built; nothing runs): tests inspect it."""
    return command_and_config(parser.parse_args(list(argv)))[1]


__all__ = [
    "CONFIG_FILE_KEY",
    "Command",
    "Group",
    "add_flags",
    "build_parser",
    "command_and_config",
    "command_config",
]
