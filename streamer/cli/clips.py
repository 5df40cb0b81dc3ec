"""A whole (short) clip in memory for ``stylestream eval``, read through the streamer's sources.

Any INPUT ``render`` accepts works here too (a video file, a frame folder, a ``%06d`` pattern, a
glob, ``lavfi:...``), with the same one-line errors; :mod:`training.evaluate` then gets plain
arrays and never imports the streamer.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import cv2
import numpy as np

from adaattn_video.errors import StylestreamError
from streamer.sources import open_source

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".gif", ".tif", ".tiff")


class ClipReadError(StylestreamError, ValueError):
    """A clip is too short, a single image, or has frames of different sizes."""


def read_clip(
    uri: str | Path, *, max_frames: int | None = None, size: tuple[int, int] | None = None
) -> np.ndarray:
    """The frames of ``uri`` as one (T, H, W, 3) uint8 RGB array, T >= 2.

    Args:
        max_frames: keep only the first frames.
        size: (height, width) every frame is resized to (area interpolation), or None.

    Raises the source's one-line errors (missing file, not a video, damaged input) and
    :class:`ClipReadError`.
    """
    text = str(uri)
    single = not text.startswith("lavfi:") and Path(text).suffix.lower() in IMAGE_SUFFIXES
    if single and Path(text).is_file():
        raise ClipReadError(f"{text} is a single image; give a video file or a frame folder")
    limit = math.inf if max_frames is None else max_frames
    frames: list[np.ndarray] = []
    with open_source(os.path.expanduser(text)) as source:
        for frame in source:
            if len(frames) >= limit:
                break
            frames.append(frame.image)
    if len(frames) < 2:
        raise ClipReadError(f"clip {text} has {len(frames)} frame(s); at least 2 are needed")
    shapes = {f.shape for f in frames}
    if len(shapes) > 1 and size is None:
        raise ClipReadError(f"frames of {text} differ in size {sorted(shapes)}; pass --size")
    if size is not None:
        h, w = size
        frames = [
            f if f.shape[:2] == (h, w) else cv2.resize(f, (w, h), interpolation=cv2.INTER_AREA)
            for f in frames
        ]
    return np.stack(frames)


__all__ = ["ClipReadError", "read_clip"]
