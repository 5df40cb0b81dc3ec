"""``stylestream`` command line: thin argument parsing around functions that tests call too.

Every command is a row of the table in :mod:`streamer.cli.commands` (its words, its config
dataclass, its run function); :mod:`configkit.flags` generates the flags from the config's
fields and builds the config from the command's defaults, the ``--config`` YAML file and the
flags given, in that order.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from typing import Any

from streamer import interrupts

interrupts.install_for_imports()  # a Ctrl-C during the imports below: exit 130, no traceback
from configkit.convert import ConfigError  # noqa: E402
from configkit.errors import StylestreamError  # noqa: E402
from configkit.flags import build_parser as build_command_parser  # noqa: E402
from configkit.flags import command_and_config  # noqa: E402

interrupts.imports_done()  # main() takes over with interrupts.install()

log = logging.getLogger("stylestream")


def build_parser() -> argparse.ArgumentParser:
    """The ``stylestream`` parser: global flags, then the command table."""
    from streamer.cli.commands import COMMANDS, GROUPS

    parser = argparse.ArgumentParser(
        prog="stylestream",
        description="Real-time video style transfer (video-tuned AdaAttN).",
    )
    parser.add_argument(
        "-v", "--verbose", action="count", default=0, help="more logging (-vv: per frame)"
    )
    parser.add_argument("--debug", action="store_true", help="show full tracebacks for errors")
    return build_command_parser(parser, GROUPS, COMMANDS)


def command_config(argv: Sequence[str]) -> Any:
    """The config ``stylestream ARGV...`` would run with (parsed, merged and converted; nothing
    runs): tests check defaults and YAML values with it."""
    return command_and_config(build_parser().parse_args(list(argv)))[1]


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``stylestream`` console script; returns the process exit code."""
    interrupts.install()  # from here a Ctrl-C is never lost and never a traceback
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = False
    try:
        namespace = build_parser().parse_args(argv)  # a usage error: argparse's exit 2
        debug = namespace.debug
        command, config = command_and_config(namespace)
        verbose = min(namespace.verbose, 2)
        level = logging.WARNING - 10 * verbose if verbose else logging.INFO
        logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
        return int(command.run(config) or 0)
    except StylestreamError as err:
        if debug:
            raise
        print(f"stylestream: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as err:
        print("stylestream: interrupted", file=sys.stderr)
        return err.exit_code if isinstance(err, interrupts.Interrupted) else 130
    except Exception as err:
        # A signal during start-up raises Interrupted wherever Python is; a few places re-raise
        # it as another error (a class body's __set_name__: RuntimeError). Still an interrupt.
        interrupted = interrupts.interrupt_in_chain(err)
        if interrupted is None:
            raise
        print("stylestream: interrupted", file=sys.stderr)
        return interrupted.exit_code
    finally:
        interrupts.uninstall()


__all__ = ["ConfigError", "build_parser", "command_config", "main"]
