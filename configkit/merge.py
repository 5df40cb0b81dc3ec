"""The layers of a command's settings, merged in one explicit order.

A command's config is built from three mappings, later ones winning key by key::

    command defaults  <  the --config YAML file  <  the flags given on the command line

A key absent from a layer leaves the earlier value; a key present with ``None`` (YAML
``null``) IS a value and replaces it. Lists are replaced whole (a ``--style`` flag replaces the
file's style list, it does not add to it). Keys are compared with ``-`` read as ``_``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def normalize_key(key: Any) -> str:
    """``style-size`` and ``style_size`` are one key."""
    return str(key).replace("-", "_")


def merge(*layers: Mapping[Any, Any]) -> dict[str, Any]:
    """One mapping of every key of ``layers``; a later layer's value wins (``None`` too)."""
    merged: dict[str, Any] = {}
    for layer in layers:
        for key, value in layer.items():
            merged[normalize_key(key)] = value
    return merged


__all__ = ["merge", "normalize_key"]
