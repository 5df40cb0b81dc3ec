"""What commands report: the ``--json`` file of every command that has one, and the table plus
JSON of a benchmark result."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Protocol


class TableResult(Protocol):
    """A benchmark result: a printable table and a JSON-ready dict."""

    def table(self) -> str: ...

    def to_dict(self) -> dict[str, Any]: ...


def write_json_report(path: str | Path, data: Any) -> None:
    """Write a command's ``--json`` report (indented JSON) and say so; written under a
    temporary name and renamed (:func:`streamer.guard.atomic_output`), so a run that fails
    half-way never replaces an older report with half of one."""
    from streamer.guard import atomic_output

    with atomic_output(path) as temp:
        temp.write_text(json.dumps(data, indent=2) + "\n")
    print(f"wrote {path}")


def report_result(result: TableResult, json_path: str | Path | None) -> int:
    """Print ``result``'s table and, with a ``--json`` path, write its dict there; returns the
    command's exit status 0."""
    print(result.table())
    if json_path:
        write_json_report(json_path, result.to_dict())
    return 0
