"""Flicker and frame rate of each temporal setting on one clip (``TemporalOptions`` levers).

For a clip with exactly known motion (:func:`pan_cut_clip`: a virtual camera panning over one
photo, a hard cut, then over another) and a stylizer, :func:`measure_modes` runs every setting
frame by frame, as a live stream would, and reports per setting:

* ``warping_error``: the warping error of Lai et al. 2018 between consecutive frames
  (:func:`training.evaluate.warping_error`, exact flow, the cut pair excluded);
* ``long_warping_error``: the same between frames t and t + 5 (same shot only): slow drift and
  trailing that a consecutive-pair metric misses;
* ``psnr_vs_per_frame``: PSNR (dB) of the output against the plain per-frame stylization at
  full size (how much the setting changes the picture);
* ``fps`` (wall clock) and ``fps_cpu`` (CPU time of this process: steadier on a busy machine),
  over every frame but the first (warm-up); with ``repeats`` > 1 the settings run round robin
  and each frame counts its least time over the repeats (a busy machine's noise filtered out).

The ``input`` row is the unstylized clip: its warping error is the floor (resampling only).
Numbers, not a pass/fail test.
"""

from __future__ import annotations

import itertools
import math
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import cv2
import numpy as np
import torch

from streamer.temporal.options import TemporalOptions
from streamer.temporal.state import TemporalCounters
from streamer.temporal.stylizer import TemporalStylizer
from training.evaluate import ClipMotion, inside_mask, synthetic_clip, warping_error

LONG_OFFSET = 5


@dataclass(frozen=True)
class PanCutClip:
    """Frames (T, H, W, 3) uint8; exact backward flows of consecutive pairs (``motion``) and of
    pairs ``LONG_OFFSET`` apart, grouped by start offset (``long_motions[o]`` belongs to
    ``frames[o::LONG_OFFSET]``); ``cut`` the index of the first frame of the second shot."""

    frames: np.ndarray
    motion: ClipMotion
    long_motions: tuple[ClipMotion, ...]
    cut: int


def _pan_motion(
    pairs: Sequence[tuple[int, int]], shape: tuple[int, int], speed: float, shot_of: Sequence[int]
) -> ClipMotion:
    """Exact flows of a horizontal pan for frame pairs (a, b), b > a: (b - a) * ``speed``
    pixels; pairs across a cut (``shot_of`` differs) get no valid pixel."""
    flows, masks = [], []
    for a, b in pairs:
        flow = np.zeros((*shape, 2), np.float32)
        flow[..., 0] = (b - a) * speed
        flows.append(flow)
        masks.append(inside_mask(flow) if shot_of[a] == shot_of[b] else np.zeros(shape, bool))
    return ClipMotion(flows, masks, "exact")


def pan_cut_clip(
    photos: Sequence[np.ndarray],
    *,
    size: tuple[int, int] = (360, 640),
    frames_per_shot: int = 12,
    speed: float = 3.0,
) -> PanCutClip:
    """One shot per photo (each enlarged to twice its longer side so a ``size`` window can pan
    over it), ``speed`` pixels per frame to the right, hard cuts between shots."""
    shots = []
    for photo in photos:
        scale = max(2.0, (size[1] + speed * frames_per_shot + 2) / photo.shape[1])
        big = cv2.resize(photo, None, fx=scale, fy=scale, interpolation=cv2.INTER_CUBIC)
        shot, _ = synthetic_clip(big, frames=frames_per_shot, size=size, speed=speed)
        shots.append(shot)
    frames = np.concatenate(shots)
    shot_of = [i // frames_per_shot for i in range(len(frames))]
    consecutive = [(t, t + 1) for t in range(len(frames) - 1)]
    long_motions = []
    for offset in range(LONG_OFFSET):
        index = list(range(offset, len(frames), LONG_OFFSET))
        pairs = list(itertools.pairwise(index))
        long_motions.append(_pan_motion(pairs, size, speed, shot_of))
    return PanCutClip(
        frames, _pan_motion(consecutive, size, speed, shot_of), tuple(long_motions),
        frames_per_shot,
    )  # fmt: skip


def long_warping_error(frames: np.ndarray, clip: PanCutClip) -> float:
    """Warping error between frames ``LONG_OFFSET`` apart, averaged over every valid pair."""
    total = count = 0.0
    for offset, motion in enumerate(clip.long_motions):
        pairs = sum(bool(m.any()) for m in motion.masks)
        if pairs:
            total += warping_error(frames[offset::LONG_OFFSET], motion) * pairs
            count += pairs
    return total / count if count else math.nan


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    """PSNR (dB) of two uint8 arrays over all their values (inf when equal)."""
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return math.inf if mse == 0 else 10.0 * math.log10(255.0**2 / mse)


@dataclass
class TemporalRow:
    """One setting's numbers (``temporal`` "input": the unstylized clip)."""

    model: str
    style: str
    temporal: str
    keyframe_interval: int
    work_size: int | str | None
    warping_error: float
    long_warping_error: float
    psnr_vs_per_frame: float | None
    fps: float | None
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


DEFAULT_SETTINGS: tuple[TemporalOptions, ...] = (
    TemporalOptions(),
    TemporalOptions(temporal="stats"),
    TemporalOptions(temporal="flow"),
    TemporalOptions(keyframe_interval=2),
    TemporalOptions(temporal="flow", keyframe_interval=2),
    TemporalOptions(work_size=384),
    TemporalOptions(temporal="flow", work_size=384),
    TemporalOptions(temporal="flow", keyframe_interval=2, work_size=384),
    TemporalOptions(temporal="flow", keyframe_interval=3, work_size=384),
)


@dataclass
class _Run:
    outputs: np.ndarray
    counters: TemporalCounters
    seconds: np.ndarray  # (T - 1, 2) per frame, wall and CPU: the least over the repeats

    def fps(self, clock: int) -> float:
        return len(self.seconds) / max(float(self.seconds[:, clock].sum()), 1e-9)


def _timed_runs(
    clip: PanCutClip, stylizer: Any, settings: Sequence[TemporalOptions], repeats: int
) -> list[_Run]:
    """Each setting ``repeats`` times, round robin; each frame's time is the least over the
    repeats, which filters out the time other processes took from this one (the outputs are
    deterministic: the first run's are kept)."""
    runs: list[_Run | None] = [None] * len(settings)
    for _ in range(repeats):
        for i, options in enumerate(settings):
            wrapper = TemporalStylizer(stylizer, options)
            outputs, seconds = run_clip(wrapper, clip.frames)
            wrapper.close()
            best = runs[i]
            if best is None:
                runs[i] = _Run(outputs, wrapper.counters, seconds)
            else:
                best.seconds = np.minimum(best.seconds, seconds)
    return [run for run in runs if run is not None]


def measure_modes(
    clip: PanCutClip,
    stylizer: Any,
    settings: Sequence[TemporalOptions] = DEFAULT_SETTINGS,
    *,
    model: str = "video",
    style: str = "style",
    repeats: int = 1,
) -> list[TemporalRow]:
    """The input row, then one row per setting; the plain setting (the per-frame reference of
    ``psnr_vs_per_frame``) always comes first, added when ``settings`` lacks it."""
    rows = [
        TemporalRow(
            model="input", style="-", temporal="-", keyframe_interval=1, work_size=None,
            warping_error=warping_error(clip.frames, clip.motion),
            long_warping_error=long_warping_error(clip.frames, clip),
            psnr_vs_per_frame=None, fps=None,
        )
    ]  # fmt: skip
    plain = TemporalOptions()
    settings = [plain, *(s for s in settings if s != plain)]
    runs = _timed_runs(clip, stylizer, settings, repeats)
    reference = runs[0].outputs
    for options, run in zip(settings, runs, strict=True):
        rows.append(
            TemporalRow(
                model=model, style=style, temporal=options.temporal,
                keyframe_interval=options.keyframe_interval, work_size=options.work_size,
                warping_error=warping_error(run.outputs, clip.motion),
                long_warping_error=long_warping_error(run.outputs, clip),
                psnr_vs_per_frame=psnr(run.outputs, reference), fps=run.fps(0),
                fps_cpu=run.fps(1), stylized=run.counters.stylized, warped=run.counters.warped,
                fallbacks=run.counters.fallbacks, resets=run.counters.resets,
            )
        )  # fmt: skip
    return rows


def table(rows: Sequence[TemporalRow]) -> str:
    """A markdown table of ``rows``."""
    header = (
        "| temporal | kf | work | warp err | long warp err | PSNR vs per-frame | fps | fps (cpu) |"
    )
    lines = [header, "|" + "---|" * 8]

    def num(v: float | None, fmt: str) -> str:
        return "-" if v is None else format(v, fmt)

    for r in rows:
        lines.append(
            f"| {r.temporal if r.model != 'input' else 'input'} | {r.keyframe_interval} | "
            f"{r.work_size or '-'} | {r.warping_error:.4f} | {r.long_warping_error:.4f} | "
            f"{num(r.psnr_vs_per_frame, '.1f')} | {num(r.fps, '.2f')} | {num(r.fps_cpu, '.2f')} |"
        )
    return "\n".join(lines)


def main() -> None:
    """The report's run: 640x360, two bundled photos, untrained video model, CPU, 2 threads."""
    import json
    import sys

    from adaattn_video.assets import CONTENTS_DIR, DEFAULT_STYLE
    from adaattn_video.checkpoint import open_model
    from adaattn_video.image_io import read_image
    from adaattn_video.stylizer import FrameStylizer, StylizerConfig

    torch.set_num_threads(2)
    names = ("tubingen.jpg", "venice-boat.jpg")
    photos = [read_image(CONTENTS_DIR / n).permute(1, 2, 0).numpy() for n in names]
    clip = pan_cut_clip(photos, speed=2.5)  # sub-pixel resampling: the input's floor is > 0
    stylizer = FrameStylizer(open_model(None, untrained=True), StylizerConfig(device="cpu"))
    stylizer.set_style(DEFAULT_STYLE)
    rows = measure_modes(clip, stylizer, style="udnie", repeats=3)
    print(table(rows))
    if len(sys.argv) > 1:
        with open(sys.argv[1], "w") as out:
            json.dump([r.to_dict() for r in rows], out, indent=2, allow_nan=True)


__all__ = [
    "DEFAULT_SETTINGS",
    "LONG_OFFSET",
    "PanCutClip",
    "TemporalRow",
    "long_warping_error",
    "measure_modes",
    "pan_cut_clip",
    "psnr",
    "run_clip",
    "table",
]


if __name__ == "__main__":
    main()
