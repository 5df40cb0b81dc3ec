"""Value checks for :func:`configkit.convert.option`'s ``check=``: declared with the field, run
by the converter on every non-null value (a YAML key, a flag, a request field alike).

Each check raises ``ValueError`` with the words after "``KEY: ``" in the one-line error.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

Check = Callable[[Any], None]


def positive(value: float) -> None:
    """> 0."""
    if not value > 0:
        raise ValueError(f"must be > 0, got {value}")


def non_negative(value: float) -> None:
    """>= 0."""
    if not value >= 0:
        raise ValueError(f"must be >= 0, got {value}")


def at_least(low: float) -> Check:
    """>= ``low`` (every item when the value is a list)."""

    def check(value: Any) -> None:
        for item in value if isinstance(value, (list, tuple)) else (value,):
            if not item >= low:
                raise ValueError(f"must be >= {low:g}, got {item}")

    return check


def between(low: float, high: float) -> Check:
    """In ``[low, high]``."""

    def check(value: float) -> None:
        if not low <= value <= high:
            raise ValueError(f"must be in {low:g}..{high:g}, got {value}")

    return check


def all_of(*checks: Check) -> Check:
    """Every one of ``checks`` in turn."""

    def check(value: Any) -> None:
        for one in checks:
            one(value)

    return check


__all__ = ["Check", "all_of", "at_least", "between", "non_negative", "positive"]
