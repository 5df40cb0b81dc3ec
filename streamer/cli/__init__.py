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

from streamer import interrupts

interrupts.install_for_imports()  # a Ctrl-C during the imports below: exit 130, no traceback
from adaattn_video.errors import StylestreamError  # noqa: E402
from configkit.convert import ConfigError  # noqa: E402
from configkit.yaml_loader import load_yaml_file  # noqa: E402
from streamer.cli.options import ReplaceAppend  # noqa: E402

interrupts.imports_done()  # main() takes over with interrupts.install()

log = logging.getLogger("stylestream")

# Each module's ``register(subparsers)`` adds one or more subcommands.
_COMMAND_MODULES: tuple[str, ...] = (
    "streamer.cli.model_commands",
    "streamer.cli.render_commands",
    "streamer.cli.bench_commands",
    "streamer.cli.training_commands",
    "streamer.cli.live_commands",
    "streamer.cli.region_options",
    "streamer.cli.serve_commands",  # after live: it extends `control` and `view`
    "streamer.cli.studio_commands",
    "streamer.cli.export_commands",
)


def apply_yaml_config(parser: argparse.ArgumentParser, path: str | Path) -> None:
    """Use the mapping in the YAML file at ``path`` as ``parser``'s defaults.

    The file is read by the one config loader (:func:`configkit.yaml_loader.load_yaml_file`:
    no anchors/aliases, no repeated keys, size-capped). Keys are option names with ``-`` or
    ``_`` (``style-size`` or ``style_size``). Values are checked later by the same code that
    checks flags, so a bad value gives the same message.
    """
    path = Path(path)
    data = load_yaml_file(path)
    known = {action.dest for action in parser._actions}
    hidden = ("help", "config", "func")
    defaults = {}
    for key, value in data.items():
        dest = str(key).replace("-", "_")
        if dest not in known or dest in hidden or dest.startswith("_"):
            options = ", ".join(sorted(d for d in known if d not in hidden and d[0] != "_"))
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


def _config_path(argv: Sequence[str]) -> str | None:
    """The file of ``--config FILE`` / ``--config=FILE`` (one at most), or None."""
    paths = []
    for i, token in enumerate(argv):
        if token == "--":
            break
        if token == "--config":
            if i + 1 >= len(argv):
                raise ConfigError("--config needs a YAML file path")
            paths.append(argv[i + 1])
        elif token.startswith("--config="):
            paths.append(token.split("=", 1)[1])
    if len(paths) > 1:
        raise ConfigError(f"--config is given {len(paths)} times; give one YAML file")
    return paths[0] if paths else None


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``stylestream`` console script; returns the process exit code."""
    interrupts.install()  # from here a Ctrl-C is never lost and never a traceback
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv
    try:
        parser = build_parser()
        config_path = _config_path(argv)
        if config_path is not None:
            apply_yaml_config(_subparser_for(parser, argv), config_path)
        args = parser.parse_args(argv)
        level = logging.WARNING - 10 * min(args.verbose, 2) if args.verbose else logging.INFO
        logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
        return int(args.func(args) or 0)
    except StylestreamError as err:
        if debug:
            raise
        print(f"stylestream: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as err:
        print("stylestream: interrupted", file=sys.stderr)
        return err.exit_code if isinstance(err, interrupts.Interrupted) else 130
    finally:
        interrupts.uninstall()


def add_config_option(parser: argparse.ArgumentParser) -> None:
    """Add ``--config FILE.yaml`` (handled in :func:`main` before parsing)."""
    parser.add_argument(
        "--config", metavar="FILE.yaml", help="read options from a YAML file; flags override it"
    )


__all__ = [
    "ConfigError",
    "ReplaceAppend",
    "add_config_option",
    "apply_yaml_config",
    "build_parser",
    "main",
]
