"""Short message fragments from exceptions raised by untrusted input."""

from __future__ import annotations


def first_line(err: BaseException, limit: int = 200) -> str:
    """The first line of ``err``'s message (at most ``limit`` characters), or its type name."""
    text = str(err).strip()
    return text.splitlines()[0][:limit] if text else type(err).__name__
