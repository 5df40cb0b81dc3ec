"""Frame sinks: where stylized frames go.

A sink has ``write(frame)`` and ``close()`` (flush and finalize; idempotent, always called by
the pipeline, also after an error or Ctrl-C). Optionally ``end_of_stream()``: called by the
pipeline once the source was read to its end without error, before ``close()`` (the MP4 sink then
copies the input's audio to its end instead of stopping at the last video frame).

Outputs here: :class:`~streamer.sinks.mp4.Mp4Sink` (MP4/MOV/MKV via PyAV) and
:class:`~streamer.sinks.images.ImageSequenceSink` (PNG/JPEG sequence).
"""

from __future__ import annotations

import os
from pathlib import Path

from adaattn_video.errors import StylestreamError

VIDEO_SUFFIXES = frozenset({".mp4", ".m4v", ".mov", ".mkv"})


class OutputError(StylestreamError, OSError):
    """An output cannot be created or written (missing folder, no permission, disk full)."""


class OutputExistsError(StylestreamError, FileExistsError):
    """The output exists and ``--overwrite`` was not given."""


class EncoderError(StylestreamError, ValueError):
    """An encoder setting is wrong (unknown codec, unsupported pixel format, bad option)."""


def is_image_output(target: str | Path) -> bool:
    """True for a PNG/JPEG sequence target: an existing folder, a path ending in ``/``, or a
    pattern with ``%d`` (``frames/%06d.png``)."""
    text = str(target)
    return (
        text.endswith(("/", os.sep))
        or Path(text).is_dir()
        or "%" in Path(text).name
        or (Path(text).suffix == "" and not Path(text).exists())
    )


def check_output_file(path: str | Path, *, overwrite: bool) -> Path:
    """Check that a file can be written at ``path`` without creating it.

    Raises:
        OutputExistsError: it exists and ``overwrite`` is False.
        OutputError: its folder is missing or not writable, or it is a folder.
    """
    path = Path(path)
    if path.is_dir():
        raise OutputError(f"output {path} is a folder; give a file name such as {path / 'out.mp4'}")
    if path.exists() and not overwrite:
        raise OutputExistsError(f"output {path} exists; pass --overwrite to replace it")
    folder = path.parent if str(path.parent) else Path(".")
    if not folder.is_dir():
        raise OutputError(f"output folder {folder} does not exist; create it first")
    if not os.access(folder, os.W_OK) or (path.exists() and not os.access(path, os.W_OK)):
        raise OutputError(f"output {path} is not writable (permission denied)")
    return path


__all__ = [
    "VIDEO_SUFFIXES",
    "EncoderError",
    "OutputError",
    "OutputExistsError",
    "check_output_file",
    "is_image_output",
]
