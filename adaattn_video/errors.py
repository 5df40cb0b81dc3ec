"""Errors a user can cause, and fix.

Every error here inherits the builtin that fits it (so ``except ValueError`` still works) and
:class:`StylestreamError`, which the command line turns into one readable line and a non-zero
exit instead of a traceback.
"""

from __future__ import annotations

from configkit.errors import StylestreamError


class CheckpointError(StylestreamError, ValueError):
    """A weights file is missing keys, has extra or misshaped ones, or is not a state dict."""


class MissingWeightsError(StylestreamError, FileNotFoundError):
    """No weights were given and none are in the cache."""


class ImageReadError(StylestreamError, ValueError):
    """An image file (content or style) is missing or cannot be decoded."""


class ArchiveLimitError(CheckpointError):
    """An archive member declares (or holds) far more bytes than any weights file: refused
    before it is decompressed."""


class ImageTooLargeError(ImageReadError):
    """An image decodes to more pixels than the documented limit (a "decompression bomb")."""


class WeightsDownloadError(StylestreamError, ConnectionError):
    """The published weights (or torchvision's VGG19) could not be downloaded."""
