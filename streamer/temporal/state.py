"""What one stream remembers between frames, and the counters its status line shows.

Everything here belongs to ONE stream: ``serve`` builds one :class:`StreamState` (inside one
:class:`~streamer.temporal.stylizer.TemporalStylizer`) per stream, so no frame of one stream can
leak into another's output.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np
from torch import Tensor

from adaattn_video.temporal_stats import TemporalStats
from streamer.temporal.cuts import SceneCutDetector


@dataclass
class TemporalCounters:
    """Frames by how they were made, since the wrapper was built.

    ``stylized``: frames the model ran on (keyframes, fallbacks included); ``warped``: frames
    made by warping the last stylized frame; ``fallbacks``: frames stylized early because their
    motion was unreliable; ``blended``: stylized frames blended with the warped previous output;
    ``resets``: state resets (cuts, style/alpha/size changes, explicit); ``cuts``: scene cuts.
    """

    frames: int = 0
    stylized: int = 0
    warped: int = 0
    fallbacks: int = 0
    blended: int = 0
    resets: int = 0
    cuts: int = 0

    def to_dict(self) -> dict[str, int]:
        return asdict(self)

    def status(self) -> str:
        """One short status-line fragment."""
        return (
            f"{self.stylized} stylized, {self.warped} warped, {self.fallbacks} fallbacks, "
            f"{self.resets} resets"
        )


@dataclass
class Reference:
    """A frame the next ones are tied to: its small luma (h, w) uint8 for the flow, and the
    output shown for it (1, 3, H, W) float32 on the device."""

    gray: np.ndarray
    output: Tensor


@dataclass
class StreamState:
    """The memory of one stream; :meth:`clear` forgets it (a reset)."""

    stats: TemporalStats
    cuts: SceneCutDetector
    previous: Reference | None = None  # the last frame shown
    keyframe: Reference | None = None  # the last stylized frame
    since_keyframe: int = 0  # frames shown since (and including) the last keyframe
    context: tuple[object, ...] = field(default_factory=tuple)  # (style, alpha, size)

    def clear(self, *, keep_cut_history: bool = False) -> None:
        """Forget every frame; ``keep_cut_history``: the cut detector keeps the frame it just
        saw (a reset BY a cut: the next frame is still checked against it)."""
        self.stats.reset()
        if not keep_cut_history:
            self.cuts.reset()
        self.previous = None
        self.keyframe = None
        self.since_keyframe = 0


__all__ = ["Reference", "StreamState", "TemporalCounters"]
