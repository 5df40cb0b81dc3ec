"""Optical flow between input frames, with a reliability mask: the CPU side of ``flow``.

DIS flow (Kroeger et al. 2016, OpenCV ``cv2.DISOpticalFlow_create``) on grayscale frames shrunk
to ``size`` pixels on the longer side: a few milliseconds per pair, no weights. OpenCV releases
the GIL, so :class:`FlowThread` runs it beside the model (on a GPU the flow of a batch costs no
wall time; on a CPU it shares the cores).

The flow is *backward*: for the target frame t and a reference frame r (the previous frame or
the last keyframe), ``target(p) ~ reference(p + flow(p))``. A pixel's flow is trusted when

* forward and backward flow agree (Sundaram et al. 2010): with G the flow r -> t sampled at
  p + F(p), ``|F + G|^2 < 0.01 (|F|^2 + |G|^2) + 0.5`` (an occlusion fails it);
* p + F(p) lands inside the reference frame;
* brightness is constant along it: ``|target(p) - reference(p + F(p))| <= brightness_tol``.

Shapes: frames (H, W, 3) uint8 RGB; small grays (h, w) uint8; flows (h, w, 2) float32 (dx, dy)
in small-frame pixels; masks (h, w) float32 in {0, 1}.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import TypeVar

import cv2
import numpy as np

T = TypeVar("T")

PRESETS = {
    "ultrafast": cv2.DISOPTICAL_FLOW_PRESET_ULTRAFAST,
    "fast": cv2.DISOPTICAL_FLOW_PRESET_FAST,
    "medium": cv2.DISOPTICAL_FLOW_PRESET_MEDIUM,
}


def small_gray(frame: np.ndarray, size: int) -> np.ndarray:
    """(H, W, 3) uint8 RGB -> (h, w) uint8 luma with longer side ``size`` (never enlarged)."""
    gray = cv2.cvtColor(np.ascontiguousarray(frame), cv2.COLOR_RGB2GRAY)
    h, w = gray.shape
    scale = size / max(h, w)
    if scale >= 1.0:
        return gray
    target = (max(8, round(w * scale)), max(8, round(h * scale)))
    return cv2.resize(gray, target, interpolation=cv2.INTER_AREA)


def _grid(height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    return np.meshgrid(
        np.arange(width, dtype=np.float32), np.arange(height, dtype=np.float32), indexing="xy"
    )


def remap(image: np.ndarray, flow: np.ndarray) -> np.ndarray:
    """``image`` sampled at p + flow(p), bilinear, borders replicated."""
    gx, gy = _grid(*flow.shape[:2])
    return cv2.remap(
        image, gx + flow[..., 0], gy + flow[..., 1], cv2.INTER_LINEAR,
        borderMode=cv2.BORDER_REPLICATE,
    )  # fmt: skip


def reliable_mask(
    backward: np.ndarray,
    forward: np.ndarray,
    target: np.ndarray,
    reference: np.ndarray,
    brightness_tol: float,
) -> np.ndarray:
    """(h, w) float32 1 where the backward flow is trusted (see the module docstring)."""
    h, w = backward.shape[:2]
    forward_there = remap(forward, backward)
    mismatch = np.sum((backward + forward_there) ** 2, axis=-1)
    bound = 0.01 * (np.sum(backward**2, axis=-1) + np.sum(forward_there**2, axis=-1)) + 0.5
    gx, gy = _grid(h, w)
    x, y = gx + backward[..., 0], gy + backward[..., 1]
    inside = (x >= 0) & (x <= w - 1) & (y >= 0) & (y <= h - 1)
    seen = remap(reference.astype(np.float32), backward)
    constant = np.abs(target.astype(np.float32) - seen) <= brightness_tol
    return (inside & constant & (mismatch < bound)).astype(np.float32)


@dataclass(frozen=True)
class Motion:
    """The motion of a target frame relative to a reference frame (small-frame pixels).

    ``flow`` (h, w, 2) backward (target -> reference), ``valid`` (h, w) float32 in {0, 1},
    ``valid_fraction`` its mean.
    """

    flow: np.ndarray
    valid: np.ndarray

    @property
    def valid_fraction(self) -> float:
        return float(self.valid.mean())


MIN_FLOW_SIDE = 12  # DIS refuses smaller frames


class FlowEstimator:
    """DIS flow with a reliability mask between small grayscale frames (one per stream: the DIS
    object keeps buffers and is not thread-safe; one thread at a time).

    Args:
        size: longer side (pixels) frames are shrunk to before the flow.
        preset: DIS preset, "ultrafast", "fast" or "medium".
        brightness_tol: largest luma change (0-255) along a trusted flow vector.
    """

    def __init__(self, size: int = 320, preset: str = "fast", brightness_tol: float = 16.0) -> None:
        if preset not in PRESETS:
            raise ValueError(f"preset must be one of {sorted(PRESETS)}, got {preset!r}")
        self.size = size
        self.brightness_tol = brightness_tol
        self._dis = cv2.DISOpticalFlow_create(PRESETS[preset])

    def prepare(self, frame: np.ndarray) -> np.ndarray:
        """(H, W, 3) uint8 RGB -> the small gray the flow works on."""
        return small_gray(frame, self.size)

    def motion(self, target: np.ndarray, reference: np.ndarray) -> Motion:
        """The backward motion target -> reference of two :meth:`prepare` results."""
        if target.shape != reference.shape:
            raise ValueError(f"frame sizes differ: {target.shape} vs {reference.shape}")
        h, w = target.shape[:2]
        if min(h, w) < MIN_FLOW_SIDE:  # DIS cannot work on slivers: no motion is trusted
            return Motion(np.zeros((h, w, 2), np.float32), np.zeros((h, w), np.float32))
        backward = self._dis.calc(target, reference, None)
        forward = self._dis.calc(reference, target, None)
        valid = reliable_mask(backward, forward, target, reference, self.brightness_tol)
        return Motion(backward, valid)


class FlowThread:
    """One worker thread for the flow (lazily started), so it overlaps the model call."""

    def __init__(self) -> None:
        self._pool: ThreadPoolExecutor | None = None

    def submit(self, fn: Callable[..., T], *args: object) -> Future[T]:
        if self._pool is None:
            self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="temporal-flow")
        return self._pool.submit(fn, *args)

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None


__all__ = ["PRESETS", "FlowEstimator", "FlowThread", "Motion", "reliable_mask", "small_gray"]
