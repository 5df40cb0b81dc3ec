"""``stylestream`` command line: thin argument parsing around functions that tests call too.

Each subcommand lives in its own module with ``register(subparsers)``; the module sets
``func`` (``args -> exit code``) on its parser. Any option may also come from a YAML file
given with ``--config``; flags on the command line override it; an unknown key is an error.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from adaattn_video.errors import StylestreamError

log = logging.getLogger("stylestream")

# Each module's ``register(subparsers)`` adds one or more subcommands.
_COMMAND_MODULES: tuple[str, ...] = (
    "streamer.cli.model_commands",
    "streamer.cli.render",
    "streamer.cli.bench",
    "streamer.cli.training_commands",
    "streamer.cli.live",
    "streamer.cli.export",
)


class ConfigError(StylestreamError, ValueError):
    """A YAML config file is missing, malformed, or has an unknown key or a bad value."""


def apply_yaml_config(parser: argparse.ArgumentParser, path: str | Path) -> None:
    """Use the mapping in the YAML file at ``path`` as ``parser``'s defaults.

    Keys are option names with ``-`` or ``_`` (``style-size`` or ``style_size``). Values are
    checked later by the same code that checks flags, so a bad value gives the same message.
    """
    import yaml

    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text())
    except FileNotFoundError as err:
        raise ConfigError(f"config file {path} does not exist") from err
    except yaml.YAMLError as err:
        where = getattr(err, "problem_mark", None)
        line = f" (line {where.line + 1}, column {where.column + 1})" if where else ""
        problem = getattr(err, "problem", None) or "syntax error"
        raise ConfigError(f"config file {path} is not valid YAML{line}: {problem}") from err
    if data is None:
        return
    if not isinstance(data, dict):
        raise ConfigError(
            f"config file {path}: expected a mapping of options, got {type(data).__name__}"
        )
    known = {action.dest for action in parser._actions}
    defaults = {}
    for key, value in data.items():
        dest = str(key).replace("-", "_")
        if dest not in known or dest in ("help", "config"):
            options = ", ".join(sorted(d for d in known if d not in ("help", "config", "func")))
            raise ConfigError(f"config file {path}: unknown key {key!r}; known keys: {options}")
        defaults[dest] = value
    parser.set_defaults(**defaults)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="stylestream",
        description="Real-time video style transfer (video-tuned AdaAttN).",
    )
    parser.add_argument(
        "-v", "--verbose", action="count", default=0, help="more logging (-vv: per frame)"
    )
    parser.add_argument("--debug", action="store_true", help="show full tracebacks for errors")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in _COMMAND_MODULES:
        importlib.import_module(name).register(subparsers)
    return parser


def _subparser_for(
    parser: argparse.ArgumentParser, argv: Sequence[str]
) -> argparse.ArgumentParser | None:
    """The (possibly nested) subparser that ``argv`` selects, to apply ``--config`` to it."""
    current = parser
    for token in argv:
        sub_actions = [a for a in current._actions if isinstance(a, argparse._SubParsersAction)]
        if not sub_actions:
            break
        if token in sub_actions[0].choices:
            current = sub_actions[0].choices[token]
    return current


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``stylestream`` console script; returns the process exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    debug = "--debug" in argv
    try:
        if "--config" in argv:
            position = argv.index("--config")
            if position + 1 >= len(argv):
                raise ConfigError("--config needs a YAML file path")
            sub = _subparser_for(parser, argv)
            apply_yaml_config(sub, argv[position + 1])
        args = parser.parse_args(argv)
        level = logging.WARNING - 10 * min(args.verbose, 2) if args.verbose else logging.INFO
        logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
        return int(args.func(args) or 0)
    except StylestreamError as err:
        if debug:
            raise
        print(f"stylestream: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("stylestream: interrupted", file=sys.stderr)
        return 130


class ReplaceAppend(argparse.Action):
    """``action="append"`` whose first use on the command line replaces a list that came from
    ``--config`` (plain ``append`` would add to the YAML list: flags must override the file)."""

    def __call__(self, parser, namespace, values, option_string=None):  # type: ignore[override]
        flag = f"_{self.dest}_from_flags"
        items = list(getattr(namespace, self.dest) or []) if getattr(namespace, flag, False) else []
        items.append(values)
        setattr(namespace, self.dest, items)
        setattr(namespace, flag, True)


def add_config_option(parser: argparse.ArgumentParser) -> None:
    """Add ``--config FILE.yaml`` (handled in :func:`main` before parsing)."""
    parser.add_argument(
        "--config", metavar="FILE.yaml", help="read options from a YAML file; flags override it"
    )
