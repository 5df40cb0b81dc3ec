"""Frame sources: where frames come from.

Every source is an iterable context manager yielding :class:`streamer.frames.Frame` and has a
``live`` attribute: ``False`` (files, image sequences: the pipeline blocks and loses nothing) or
``True`` (cameras, network streams, files paced in real time: the pipeline drops the oldest frame
when stylizing is slower than the source). Optional attributes the pipeline and the command line
use when present: ``expected_frames`` (int or None, for progress bars), ``width``/``height``,
``audio_path`` (a file whose audio streams an MP4 sink may copy).

:func:`open_source` turns a user's INPUT string into a source. Modules that add sources (webcam,
RTSP...) hook in with :func:`register_source`, so every command accepts the same INPUT syntax.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

from adaattn_video.errors import StylestreamError
from streamer.frames import FrameSource

log = logging.getLogger(__name__)

LAVFI_PREFIX = "lavfi:"


class SourceError(StylestreamError, ValueError):
    """An input cannot be opened or read (not a video, no video stream, bad option)."""


class SourceNotFoundError(StylestreamError, FileNotFoundError):
    """An input file or folder does not exist."""


class InputDamagedError(SourceError):
    """An input broke off or holds undecodable data part-way through.

    Raised by a source's iterator AFTER it has yielded every frame it could decode before the
    damage, so a pipeline renders those frames first. ``frames_read`` says how many there were.
    """

    def __init__(self, message: str, frames_read: int) -> None:
        super().__init__(message)
        self.frames_read = frames_read


SourceOpener = Callable[..., FrameSource]
_OPENERS: list[tuple[str, Callable[[str], bool], SourceOpener]] = []


def register_source(name: str, matches: Callable[[str], bool], opener: SourceOpener) -> None:
    """Let :func:`open_source` open inputs for which ``matches(uri)`` is true with
    ``opener(uri, **options)``. Registered openers are tried before the built-in file/image
    ones, newest first (so ``rtsp://`` or a webcam index never reach the file opener).
    Registering the same ``name`` again replaces the earlier opener."""
    _OPENERS[:] = [entry for entry in _OPENERS if entry[0] != name]
    _OPENERS.insert(0, (name, matches, opener))


def is_image_sequence(uri: str) -> bool:
    """A folder, a printf pattern (``frames/%06d.png``) or a glob (``frames/*.png``)."""
    if uri.startswith(LAVFI_PREFIX) or Path(uri).is_file():
        return False
    return Path(uri).is_dir() or "%" in Path(uri).name or any(c in uri for c in "*?[")


def open_source(
    uri: str,
    *,
    start_s: float = 0.0,
    duration_s: float | None = None,
    realtime: bool = False,
    fps: float | None = None,
    **options: Any,
) -> FrameSource:
    """The source for a user's INPUT string (not yet opened: use it in a ``with`` block).

    - ``lavfi:GRAPH`` -> an FFmpeg lavfi test source (``lavfi:testsrc2=size=320x240:rate=30``);
    - a folder, ``%06d`` pattern or glob -> :class:`~streamer.sources.images.ImageSequenceSource`
      (``fps`` sets its frame rate, default 30);
    - any other string -> :class:`~streamer.sources.file.FileSource` (a file PyAV opens).

    ``start_s`` / ``duration_s`` select a part (in the input's own presentation time);
    ``realtime`` paces a file at its own frame rate and makes it a live source. Options not
    understood by the chosen source are an error, not silently ignored.
    """
    for _name, matches, opener in _OPENERS:
        if matches(uri):
            return opener(
                uri,
                start_s=start_s,
                duration_s=duration_s,
                realtime=realtime,
                fps=fps,
                **options,
            )
    if is_image_sequence(uri):
        from streamer.sources.images import ImageSequenceConfig, ImageSequenceSource

        _reject_options(uri, options)
        return ImageSequenceSource(
            ImageSequenceConfig(
                uri,
                fps=30.0 if fps is None else fps,
                start_s=start_s,
                duration_s=duration_s,
                realtime=realtime,
            )
        )
    from streamer.sources.file import FileSource, FileSourceConfig

    if fps is not None:
        raise SourceError(
            f"fps={fps} applies to image sequences only; {uri} keeps its own frame timing"
        )
    if uri.startswith(LAVFI_PREFIX):
        return FileSource(
            FileSourceConfig(
                uri[len(LAVFI_PREFIX) :],
                format="lavfi",
                start_s=start_s,
                duration_s=duration_s,
                realtime=realtime,
                **options,
            )
        )
    return FileSource(
        FileSourceConfig(uri, start_s=start_s, duration_s=duration_s, realtime=realtime, **options)
    )


def _reject_options(uri: str, options: dict[str, Any]) -> None:
    if options:
        raise SourceError(f"options {sorted(options)} do not apply to the image input {uri}")


__all__ = [
    "LAVFI_PREFIX",
    "InputDamagedError",
    "SourceError",
    "SourceNotFoundError",
    "is_image_sequence",
    "open_source",
    "register_source",
]


# Webcams and network streams (streamer.sources.camera / .network, issue 4) register their
# openers when imported; importing them here makes every command accept those INPUTs.
from streamer.sources import camera as _camera  # noqa: E402, F401
from streamer.sources import network as _network  # noqa: E402, F401
