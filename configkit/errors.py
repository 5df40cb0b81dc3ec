"""The base of every error a user can cause and fix.

The command line turns a :class:`StylestreamError` into one line ``stylestream: error: ...`` and
exit code 2 instead of a traceback. It lives here, below every other package, so that the config
machinery and the model can both raise user errors.
"""

from __future__ import annotations


class StylestreamError(Exception):
    """Base of every user-facing error: the message says what was wrong and what to try."""
