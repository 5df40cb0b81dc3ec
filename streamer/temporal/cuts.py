"""Scene-cut detection from a small luma histogram and thumbnail difference.

A cut must reset every temporal state, or the next shot starts with a ghost of the previous
one. Two cheap signals on the small grayscale frame the flow uses anyway:

* the L1 distance between normalised 32-bin luma histograms of consecutive frames (0 = same
  distribution, 2 = disjoint): camera motion keeps it small, a new shot rarely does;
* the mean absolute difference of 32 x 18-ish thumbnails (0-1): catches a cut between shots
  with similar histograms; a thumbnail is blurred enough that motion alone rarely reaches it.
"""

from __future__ import annotations

import cv2
import numpy as np

BINS = 32
THUMB_SIDE = 32


def histogram(gray: np.ndarray) -> np.ndarray:
    """(h, w) uint8 -> (BINS,) float32 summing to 1."""
    hist = np.bincount((gray >> 3).ravel(), minlength=BINS).astype(np.float32)
    return hist / max(hist.sum(), 1.0)


def thumbnail(gray: np.ndarray) -> np.ndarray:
    """(h, w) uint8 -> float32 in [0, 1], longer side :data:`THUMB_SIDE`."""
    h, w = gray.shape
    scale = THUMB_SIDE / max(h, w)
    size = (max(2, round(w * scale)), max(2, round(h * scale)))
    return cv2.resize(gray, size, interpolation=cv2.INTER_AREA).astype(np.float32) / 255.0


class SceneCutDetector:
    """Says whether each frame starts a new shot (per stream; call :meth:`reset` on a reset).

    Args:
        hist_threshold: histogram L1 distance (0-2) above which frames are a cut.
        diff_threshold: thumbnail mean absolute difference (0-1) above which they are a cut.
    """

    def __init__(self, hist_threshold: float = 0.5, diff_threshold: float = 0.25) -> None:
        self.hist_threshold = hist_threshold
        self.diff_threshold = diff_threshold
        self._previous: tuple[np.ndarray, np.ndarray] | None = None
        self.last_distance = 0.0
        self.last_difference = 0.0

    def reset(self) -> None:
        self._previous = None

    def is_cut(self, gray: np.ndarray) -> bool:
        """(h, w) uint8 luma of the next frame -> True when it differs from the previous frame
        like a new shot (False for the first frame: there is nothing to cut from)."""
        current = (histogram(gray), thumbnail(gray))
        previous, self._previous = self._previous, current
        if previous is None or previous[1].shape != current[1].shape:
            return False
        self.last_distance = float(np.abs(current[0] - previous[0]).sum())
        self.last_difference = float(np.abs(current[1] - previous[1]).mean())
        return self.last_distance > self.hist_threshold or (
            self.last_difference > self.diff_threshold
        )


__all__ = ["SceneCutDetector", "histogram", "thumbnail"]
