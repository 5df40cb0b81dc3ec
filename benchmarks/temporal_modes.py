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
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np
import torch

from streamer.temporal.options import TemporalOptions, preset
from streamer.temporal.stylizer import TemporalStylizer
from training.evaluate import ClipMotion, inside_mask, synthetic_clip, warping_error
from training.temporal_eval import (
    LONG_OFFSET,
    TemporalRow,
    measure_settings,
    psnr,
    run_clip,
)
from training.temporal_eval import long_warping_error as _long_warping_error


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
    """Warping error between frames ``LONG_OFFSET`` apart (the clip's exact motion), averaged
    over every valid pair (:func:`training.temporal_eval.long_warping_error`)."""
    return _long_warping_error(frames, clip.long_motions)


DEFAULT_SETTINGS: tuple[TemporalOptions, ...] = (
    TemporalOptions(),
    TemporalOptions(temporal="stats"),
    TemporalOptions(temporal="flow"),
    TemporalOptions(keyframe_interval=2),
    TemporalOptions(temporal="flow", keyframe_interval=2),
    TemporalOptions(work_size=384),
    TemporalOptions(temporal="flow", work_size=384),
    TemporalOptions(temporal="flow", keyframe_interval=2, work_size=384),
    preset("fast"),  # the above with the coarser, faster flow
    TemporalOptions(temporal="flow", keyframe_interval=3, work_size=384),
)


def measure_modes(
    clip: PanCutClip,
    stylizer: Any,
    settings: Sequence[TemporalOptions] = DEFAULT_SETTINGS,
    *,
    model: str = "video",
    style: str = "style",
    repeats: int = 1,
) -> list[TemporalRow]:
    """The input row, then one row per setting (:func:`training.temporal_eval.measure_settings`,
    the same measurement as ``stylestream eval``); the plain setting (the per-frame reference
    of ``psnr_vs_per_frame``) always comes first, added when ``settings`` lacks it."""
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
    rows += measure_settings(
        clip.frames, clip.motion, clip.long_motions, stylizer, settings, TemporalStylizer,
        model=model, style=style, repeats=repeats,
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


def run_report(
    *, size: tuple[int, int] = (360, 640), repeats: int = 3, threads: int = 2
) -> list[TemporalRow]:
    """The documented run (``stylestream bench temporal``): a pan over two bundled photos with a
    cut, at ``size`` (height, width), the untrained video model on the CPU with ``threads``
    torch threads, every default setting ``repeats`` times in turn (each frame's best time)."""
    from adaattn_video.assets import CONTENTS_DIR, DEFAULT_STYLE
    from adaattn_video.checkpoint import open_model
    from adaattn_video.image_io import read_image
    from adaattn_video.stylizer import FrameStylizer, StylizerConfig

    torch.set_num_threads(threads)
    names = ("tubingen.jpg", "venice-boat.jpg")
    photos = [read_image(CONTENTS_DIR / n).permute(1, 2, 0).numpy() for n in names]
    clip = pan_cut_clip(photos, size=size, speed=2.5)  # sub-pixel: the input's floor is > 0
    stylizer = FrameStylizer(open_model(None, untrained=True), StylizerConfig(device="cpu"))
    stylizer.set_style(DEFAULT_STYLE)
    return measure_modes(clip, stylizer, style="udnie", repeats=repeats)


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
    "run_report",
    "table",
]
