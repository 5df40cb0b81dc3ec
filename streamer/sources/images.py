"""Image sequences as a video: a folder of frames, a numbered pattern or a glob.

This is the published AdaAttN video inference format (a folder of frames per clip). Frames are
ordered naturally (``frame2.png`` before ``frame10.png``; for a printf pattern by its number) and
timed at a constant ``fps``: ``pts = i`` in a time base of ``1 / fps``.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np

from adaattn_video.errors import ImageReadError
from adaattn_video.image_io import read_image
from streamer.frames import Frame, FrameSource, SourceCounters, SourceInfo
from streamer.sources import InputDamagedError, SourceError, SourceNotFoundError

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp"})
_PRINTF_INT = re.compile(r"%(0?\d*)d")


@dataclass(frozen=True)
class ImageSequenceConfig:
    """Attributes:
    uri: a folder (every image file in it), a printf pattern (``frames/%06d.png``) or a
        glob (``frames/*.jpg``).
    fps: frame rate the sequence is timed at.
    start_s / duration_s: the part to read, in sequence time (``start_s * fps`` frames skipped).
    realtime: pace frames at ``fps`` (a live source).
    """

    uri: str
    fps: float = 30.0
    start_s: float = 0.0
    duration_s: float | None = None
    realtime: bool = False

    def __post_init__(self) -> None:
        if not 0 < self.fps <= 1000:
            raise SourceError(f"fps must be in (0, 1000], got {self.fps}")
        if self.start_s < 0:
            raise SourceError(f"start must be >= 0 seconds, got {self.start_s}")
        if self.duration_s is not None and self.duration_s <= 0:
            raise SourceError(f"duration must be > 0 seconds, got {self.duration_s}")


def natural_key(path: Path) -> list[object]:
    """Sort key that orders embedded numbers by value: frame2 < frame10."""
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", path.name)]


def list_images(uri: str) -> list[Path]:
    """The image files ``uri`` names, in frame order.

    Raises:
        SourceNotFoundError: the folder does not exist or holds no image.
    """
    path = Path(uri)
    if path.is_dir():
        files = sorted(
            (p for p in path.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES),
            key=natural_key,
        )
    else:
        folder = path.parent
        if not folder.is_dir():
            raise SourceNotFoundError(f"input folder {folder} does not exist")
        if _PRINTF_INT.search(path.name):
            files = _match_printf(folder, path.name)
        else:
            files = sorted((p for p in folder.glob(path.name) if p.is_file()), key=natural_key)
    if not files:
        raise SourceNotFoundError(
            f"no images found for {uri} (expected {', '.join(sorted(IMAGE_SUFFIXES))} files)"
        )
    return files


def _match_printf(folder: Path, pattern: str) -> list[Path]:
    """Files in ``folder`` matching a printf pattern with one integer field, by number."""
    head, tail = _PRINTF_INT.split(pattern, maxsplit=1)[0::2]
    width = _PRINTF_INT.search(pattern).group(1)
    digits = r"\d+" if not width or not width.startswith("0") else rf"\d{{{int(width)},}}"
    regex = re.compile(re.escape(head) + f"({digits})" + re.escape(tail) + "$")
    numbered = []
    for p in folder.iterdir():
        match = regex.match(p.name)
        if match and p.is_file():
            numbered.append((int(match.group(1)), p))
    return [p for _, p in sorted(numbered)]


def read_rgb(path: Path) -> np.ndarray:
    """(H, W, 3) uint8 RGB of an image file through the project's one image reader (pixel limit,
    alpha dropped, 16-bit scaled to 8-bit)."""
    try:
        return np.ascontiguousarray(read_image(path).permute(1, 2, 0).numpy())
    except ImageReadError as err:
        raise SourceError(str(err)) from err


class ImageSequenceSource(FrameSource):
    """Frames from an image sequence (see :class:`ImageSequenceConfig`)."""

    def __init__(self, config: ImageSequenceConfig) -> None:
        self.config = config
        self.frames_read = 0
        self.rate = Fraction(config.fps).limit_denominator(1_000_000)
        self.time_base = 1 / self.rate
        self._files: list[Path] | None = None
        self._first_shape: tuple[int, ...] | None = None

    @property
    def live(self) -> bool:
        return self.config.realtime

    def open(self) -> None:
        if self._files is None:
            files = list_images(self.config.uri)
            first = round(self.config.start_s * self.rate)
            count = (
                None
                if self.config.duration_s is None
                else round(self.config.duration_s * self.rate)
            )
            self._files = files[first:] if count is None else files[first : first + count]
            if not self._files:
                raise SourceError(
                    f"{self.config.uri}: start {self.config.start_s} s is past the last of "
                    f"{len(files)} frames at {float(self.rate):g} fps"
                )
            self._first_shape = read_rgb(self._files[0]).shape

    def close(self) -> None:
        self._files = None

    def info(self) -> SourceInfo:
        return SourceInfo(
            frame_rate=self.rate,
            expected_frames=self.expected_frames,
            width=self.width,
            height=self.height,
            time_base=self.time_base,
        )

    def counters(self) -> SourceCounters:
        return SourceCounters(read=self.frames_read)

    @property
    def files(self) -> list[Path]:
        if self._files is None:
            raise RuntimeError("source is not open: use it in a `with` block")
        return self._files

    @property
    def expected_frames(self) -> int:
        return len(self.files)

    @property
    def width(self) -> int:
        self.files  # noqa: B018 (raises when not open)
        return self._first_shape[1]

    @property
    def height(self) -> int:
        self.files  # noqa: B018
        return self._first_shape[0]

    @property
    def frame_rate(self) -> Fraction:
        return self.rate

    def __iter__(self) -> Iterator[Frame]:
        start = time.monotonic()
        self.frames_read = 0
        for i, path in enumerate(self.files):
            if self.config.realtime:
                delay = start + float(i * self.time_base) - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
            try:
                image = read_rgb(path)
            except SourceError as err:
                raise InputDamagedError(
                    f"{err} (frame {i} of {len(self.files)}; the {i} frames before it were read)",
                    i,
                ) from err
            yield Frame(
                index=i, image=image, pts=i, time_base=self.time_base, capture_time_s=time.time()
            )
            self.frames_read = i + 1
