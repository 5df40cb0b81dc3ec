"""The command line's error contract, checked one way everywhere: a user mistake ends in exactly
one line on stderr, ``stylestream: error: ...`` (no traceback, nothing else), and exit status 2."""

from __future__ import annotations

from typing import Any

ERROR_PREFIX = "stylestream: error: "


def one_error_line(capsys: Any) -> str:
    """The one error line on stderr since the last ``capsys`` read (it is consumed)."""
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith(ERROR_PREFIX), err
    return lines[0]


def main_error(argv: list[str], capsys: Any) -> str:
    """Run ``stylestream ARGV`` in-process; it must exit 2 with one error line (returned)."""
    from streamer.cli import main

    code = main(argv)
    line = one_error_line(capsys)
    assert code == 2, (code, line)
    return line
