"""Stylized frames -> numbered image files (PNG by default), for pipelines that want frames.

``frames/`` writes ``frames/000000.png, 000001.png, ...``; a pattern (``out/f_%04d.jpg``) sets
names and format. The number is the frame's index in the source (so frames a live source dropped
leave gaps). Each file is written under a temporary name and renamed, so a crash never leaves a
half-written image.
"""

from __future__ import annotations

import logging
import os
import re
from dataclasses import dataclass
from pathlib import Path

import cv2

from streamer.frames import Frame, FrameSink
from streamer.sinks import EncoderError, OutputError, OutputExistsError

log = logging.getLogger(__name__)

DEFAULT_PATTERN = "%06d.png"
WRITABLE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp"})
_PRINTF_INT = re.compile(r"%0?\d*d")


@dataclass(frozen=True)
class ImageSequenceSinkConfig:
    """Attributes:
    target: a folder (``%06d.png`` inside it) or a pattern with one ``%d`` field.
    overwrite: replace existing files matching the pattern. They stay until the first new
        frame is written, then the rest is deleted (so no stale frame of an earlier, longer run
        stays behind, and a run that fails before its first frame loses nothing).
    png_compression: zlib level 0-9 (1: fast, larger files).
    jpeg_quality: 0-100 for ``.jpg`` patterns.
    """

    target: str | Path
    overwrite: bool = False
    png_compression: int = 1
    jpeg_quality: int = 95

    def __post_init__(self) -> None:
        if not 0 <= self.png_compression <= 9:
            raise ValueError(f"png_compression must be in [0, 9], got {self.png_compression}")
        if not 0 <= self.jpeg_quality <= 100:
            raise ValueError(f"jpeg_quality must be in [0, 100], got {self.jpeg_quality}")


def resolve_pattern(target: str | Path) -> Path:
    """``frames`` / ``frames/`` -> ``frames/%06d.png``; a pattern is checked and kept."""
    text = str(target)
    if "%" not in Path(text).name:
        return Path(text) / DEFAULT_PATTERN
    pattern = Path(text)
    if len(_PRINTF_INT.findall(pattern.name)) != 1 or pattern.name.count("%") != 1:
        raise EncoderError(
            f"image pattern {pattern.name!r} needs exactly one integer field such as %06d"
        )
    if pattern.suffix.lower() not in WRITABLE_SUFFIXES:
        raise EncoderError(
            f"image pattern {pattern.name!r}: expected one of "
            f"{', '.join(sorted(WRITABLE_SUFFIXES))}"
        )
    return pattern


def existing_frames(pattern: Path) -> list[Path]:
    """Files in the pattern's folder whose names the pattern could have produced."""
    folder = pattern.parent
    if not folder.is_dir():
        return []
    head, tail = _PRINTF_INT.split(pattern.name)
    regex = re.compile(re.escape(head) + r"\d+" + re.escape(tail) + "$")
    return sorted(p for p in folder.iterdir() if regex.match(p.name))


def check_image_output(target: str | Path, *, overwrite: bool) -> Path:
    """The resolved pattern, after checking that writing it loses nothing unasked.

    Raises:
        OutputExistsError: frames named like the pattern exist and ``overwrite`` is False.
        OutputError: the folder cannot be created or written.
    """
    pattern = resolve_pattern(target)
    existing = existing_frames(pattern)
    if existing and not overwrite:
        raise OutputExistsError(
            f"output folder {pattern.parent} already holds {len(existing)} file(s) named like "
            f"{pattern.name} (e.g. {existing[0].name}); pass --overwrite to replace them"
        )
    ancestor = pattern.parent
    while not ancestor.exists() and ancestor != ancestor.parent:
        ancestor = ancestor.parent
    if not ancestor.is_dir() or not os.access(ancestor, os.W_OK):
        raise OutputError(f"output folder {pattern.parent} cannot be created in {ancestor}")
    return pattern


class ImageSequenceSink(FrameSink):
    """Writes each frame as one image file (see the module docstring)."""

    def __init__(self, config: ImageSequenceSinkConfig) -> None:
        self.config = config
        self.pattern = check_image_output(config.target, overwrite=config.overwrite)
        self.folder = self.pattern.parent
        self.frames_written = 0
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            # only with overwrite (checked above); deleted once the first new frame is written
            self._stale = existing_frames(self.pattern)
        except OSError as err:
            raise OutputError(
                f"cannot prepare output folder {self.folder}: {err.strerror or err}"
            ) from err
        suffix = self.pattern.suffix.lower()
        if suffix == ".png":
            self._params = [cv2.IMWRITE_PNG_COMPRESSION, config.png_compression]
        elif suffix in (".jpg", ".jpeg"):
            self._params = [cv2.IMWRITE_JPEG_QUALITY, config.jpeg_quality]
        else:
            self._params = []

    def path_for(self, frame: Frame) -> Path:
        return self.folder / (self.pattern.name % frame.index)

    def write(self, frame: Frame) -> None:
        path = self.path_for(frame)
        partial = path.with_name(f".{path.stem}.partial{path.suffix}")
        bgr = cv2.cvtColor(frame.image, cv2.COLOR_RGB2BGR)
        try:
            ok = cv2.imwrite(str(partial), bgr, self._params)
            if not ok:
                raise OSError(f"OpenCV could not write {partial}")
            os.replace(partial, path)
        except (OSError, cv2.error) as err:
            partial.unlink(missing_ok=True)
            raise OutputError(f"writing {path} failed: {err}") from err
        self.frames_written += 1
        if self._stale:
            stale, self._stale = self._stale, []
            for old in stale:
                if old != path:
                    old.unlink(missing_ok=True)

    def close(self) -> None:
        """Nothing is buffered: every file is complete once ``write`` returns."""
