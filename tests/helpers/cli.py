"""The command line's error contract, checked one way everywhere: a user mistake ends in exactly
one ``stylestream: error: ...`` line on stderr (no traceback) and exit status 2."""

from __future__ import annotations

from typing import Any

ERROR_PREFIX = "stylestream: error: "


def one_error_line(capsys: Any, *, logs_ok: bool = False) -> str:
    """The one error line on stderr since the last ``capsys`` read (it is consumed).

    ``logs_ok``: other lines (log warnings, such as the untrained-model warning) may be there
    too; still exactly one error line and no traceback."""
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith(ERROR_PREFIX)]
    assert len(errors) == 1 and "Traceback" not in err, err
    assert logs_ok or len(lines) == 1, err
    return errors[0]


def main_error(argv: list[str], capsys: Any, *, logs_ok: bool = False) -> str:
    """Run ``stylestream ARGV`` in-process; it must exit 2 with one error line (returned)."""
    from streamer.cli import main

    code = main(argv)
    line = one_error_line(capsys, logs_ok=logs_ok)
    assert code == 2, (code, line)
    return line
