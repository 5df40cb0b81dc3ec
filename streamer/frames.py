"""The unit that flows through every pipeline: one decoded RGB frame and its timing.

Sources yield :class:`Frame`; sinks consume them. Shared by offline rendering and live streaming.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from typing import Protocol

import numpy as np


@dataclass(frozen=True)
class Frame:
    """One RGB frame.

    Attributes:
        index: 0-based position in the source (after ``--start``), counting dropped frames too.
        image: (H, W, 3) uint8 RGB, C-contiguous.
        pts: presentation timestamp in ``time_base`` units, or None when the source has none.
        time_base: seconds per pts tick, or None.
        capture_time_s: ``time.time()`` when the frame was read (for end-to-end latency).
        style_id: the style the frame was stylized with (set by the pipeline from the
            stylizer's ``style_id``; None before stylizing). Live style switches need it per
            frame: the stylizer's current style may already be the next one when it is written.
    """

    index: int
    image: np.ndarray
    pts: int | None = None
    time_base: Fraction | None = None
    capture_time_s: float = 0.0
    style_id: str | None = None

    @property
    def time_s(self) -> float | None:
        """Presentation time in seconds, or None without pts."""
        if self.pts is None or self.time_base is None:
            return None
        return float(self.pts * self.time_base)


class FrameSource(Protocol):
    """Something that yields frames. ``live`` sources drop the oldest frame when the consumer is
    slow (stay current); others block (lose nothing)."""

    live: bool

    def __iter__(self) -> Iterator[Frame]: ...

    def close(self) -> None: ...


class FrameSink(Protocol):
    """Something that consumes stylized frames; ``close`` flushes and finalizes."""

    def write(self, frame: Frame) -> None: ...

    def close(self) -> None: ...
