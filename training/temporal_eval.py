"""How much a temporal setting changes a stylized clip: the numbers ``stylestream eval`` and
``benchmarks/temporal_modes.py`` report for each setting, measured one way.

For outputs o (T, H, W, 3) uint8 of one setting and the plain per-frame outputs r of the same
model and style:

* ``warping_error``: :func:`training.evaluate.warping_error` of consecutive frames;
* ``long_warping_error``: the same between frames t and t + ``LONG_OFFSET`` (slow drift and
  trailing that a consecutive-pair metric misses), averaged over every pair with valid pixels;
* ``mean_abs_diff`` = mean |o - r| (intensities in [0, 1]) and ``psnr_vs_per_frame`` =
  10 log10(255^2 / mean (o - r)^2) dB (inf when equal): how much the setting changes the
  picture;
* ``fps``: frames per second, frame by frame as a live stream would, over every frame but the
  first (warm-up).

The temporal wrapper itself lives in ``streamer`` (which ``training`` never imports): callers
pass it in as ``wrap(stylizer, setting)``; a setting is anything with ``temporal``,
``keyframe_interval`` and ``work_size`` attributes (``streamer.temporal.TemporalOptions``).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from training.evaluate import ClipMotion, estimate_motion, warping_error

LONG_OFFSET = 5


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    """PSNR (dB) of two uint8 arrays over all their values (inf when equal)."""
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return math.inf if mse == 0 else 10.0 * math.log10(255.0**2 / mse)


def mean_abs_diff(a: np.ndarray, b: np.ndarray) -> float:
    """Mean absolute difference of two uint8 arrays, intensities in [0, 1]."""
    return float(np.mean(np.abs(a.astype(np.float32) - b.astype(np.float32)))) / 255.0


def estimate_long_motions(frames: np.ndarray) -> tuple[ClipMotion, ...]:
    """DIS motion of frame pairs ``LONG_OFFSET`` apart, grouped by start offset
    (``[o]`` belongs to ``frames[o::LONG_OFFSET]``); offsets with fewer than 2 frames are left
    out."""
    return tuple(
        estimate_motion(frames[offset::LONG_OFFSET])
        for offset in range(LONG_OFFSET)
        if len(frames[offset::LONG_OFFSET]) >= 2
    )


def long_warping_error(frames: np.ndarray, long_motions: Sequence[ClipMotion]) -> float:
    """Warping error between frames ``LONG_OFFSET`` apart, averaged over every valid pair (nan
    when the clip is too short to have one)."""
    total = count = 0.0
    for offset, motion in enumerate(long_motions):
        pairs = sum(bool(m.any()) for m in motion.masks)
        if pairs:
            total += warping_error(frames[offset::LONG_OFFSET], motion) * pairs
            count += pairs
    return total / count if count else math.nan


@dataclass
class TemporalRow:
    """One setting's numbers (``temporal`` "-" and ``model`` "input": the unstylized clip)."""

    model: str
    style: str
    temporal: str
    keyframe_interval: int
    work_size: int | str | None
    warping_error: float
    long_warping_error: float
    psnr_vs_per_frame: float | None
    fps: float | None
    mean_abs_diff: float | None = None
    fps_cpu: float | None = None
    stylized: int | None = None
    warped: int | None = None
    fallbacks: int | None = None
    resets: int | None = None

    def to_dict(self) -> dict:
        return asdict(self)


def run_clip(stylizer: Any, frames: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Frame by frame (a frame is done when its uint8 result is back, so no CUDA sync is
    needed); returns outputs (T, H, W, 3) uint8 and the seconds of every frame but the first
    (warm-up), (T - 1, 2): wall clock and CPU time of this process."""
    outputs = [stylizer(frames[0])]
    seconds = np.zeros((len(frames) - 1, 2))
    for i, frame in enumerate(frames[1:]):
        wall, cpu = time.perf_counter(), time.process_time()
        outputs.append(stylizer(frame))
        seconds[i] = time.perf_counter() - wall, time.process_time() - cpu
    return np.stack(outputs), seconds


def fps_of(seconds: np.ndarray, clock: int = 0) -> float:
    """Frames per second of :func:`run_clip`'s seconds (clock 0: wall, 1: CPU)."""
    return len(seconds) / max(float(seconds[:, clock].sum()), 1e-9)


def setting_row(
    setting: Any,
    outputs: np.ndarray,
    reference: np.ndarray,
    motion: ClipMotion,
    long_motions: Sequence[ClipMotion],
    *,
    model: str,
    style: str,
    seconds: np.ndarray,
    counters: Any = None,
) -> TemporalRow:
    """The row of one setting's ``outputs`` against the per-frame ``reference`` (see the module
    docstring); ``counters``: the wrapper's (stylized, warped, fallbacks, resets)."""
    work = setting.work_size
    return TemporalRow(
        model=model, style=style, temporal=setting.temporal,
        keyframe_interval=setting.keyframe_interval,
        work_size=f"{work[1]}x{work[0]}" if isinstance(work, tuple) else work,
        warping_error=warping_error(outputs, motion),
        long_warping_error=long_warping_error(outputs, long_motions),
        psnr_vs_per_frame=psnr(outputs, reference),
        mean_abs_diff=mean_abs_diff(outputs, reference),
        fps=fps_of(seconds, 0), fps_cpu=fps_of(seconds, 1),
        stylized=getattr(counters, "stylized", None), warped=getattr(counters, "warped", None),
        fallbacks=getattr(counters, "fallbacks", None), resets=getattr(counters, "resets", None),
    )  # fmt: skip


Wrap = Callable[[Any, Any], Any]


def measure_setting(
    stylizer: Any,
    setting: Any,
    wrap: Wrap,
    frames: np.ndarray,
    reference: np.ndarray,
    motion: ClipMotion,
    long_motions: Sequence[ClipMotion],
    *,
    model: str,
    style: str,
) -> TemporalRow:
    """One setting's row: ``frames`` through a fresh ``wrap(stylizer, setting)`` (closed after),
    against the per-frame ``reference`` outputs."""
    wrapper = wrap(stylizer, setting)
    try:
        outputs, seconds = run_clip(wrapper, frames)
    finally:
        getattr(wrapper, "close", lambda: None)()
    return setting_row(
        setting, outputs, reference, motion, long_motions, model=model, style=style,
        seconds=seconds, counters=getattr(wrapper, "counters", None),
    )  # fmt: skip


def measure_settings(
    frames: np.ndarray,
    motion: ClipMotion,
    long_motions: Sequence[ClipMotion],
    stylizer: Any,
    settings: Sequence[Any],
    wrap: Wrap,
    *,
    model: str = "model",
    style: str = "style",
    repeats: int = 1,
) -> list[TemporalRow]:
    """One row per setting; ``settings[0]`` is the plain per-frame one (the reference of
    ``psnr_vs_per_frame``). Each setting runs ``repeats`` times round robin through a fresh
    ``wrap(stylizer, setting)``; each frame counts its least time over the repeats (a busy
    machine's noise filtered out; the outputs are deterministic: the first run's are kept)."""
    runs: list[list[Any]] = []
    for repeat in range(repeats):
        for i, setting in enumerate(settings):
            wrapper = wrap(stylizer, setting)
            try:
                outputs, seconds = run_clip(wrapper, frames)
            finally:
                getattr(wrapper, "close", lambda: None)()
            if repeat == 0:
                runs.append([outputs, seconds, getattr(wrapper, "counters", None)])
            else:
                runs[i][1] = np.minimum(runs[i][1], seconds)
    reference = runs[0][0]
    return [
        setting_row(
            setting,
            outputs,
            reference,
            motion,
            long_motions,
            model=model,
            style=style,
            seconds=seconds,
            counters=counters,
        )
        for setting, (outputs, seconds, counters) in zip(settings, runs, strict=True)
    ]


__all__ = [
    "LONG_OFFSET",
    "TemporalRow",
    "estimate_long_motions",
    "fps_of",
    "long_warping_error",
    "mean_abs_diff",
    "measure_setting",
    "measure_settings",
    "psnr",
    "run_clip",
    "setting_row",
]
