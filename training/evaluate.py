"""Measuring temporal stability: the warping error (Lai et al. 2018, "Learning Blind Video
Temporal Consistency").

For consecutive output frames o_t, o_{t+1} and the backward flow F (frame t+1 -> frame t)
computed on the INPUT frames:

    E_warp = mean over pairs t of  mean over valid pixels p and channels of
             | o_{t+1}(p) - o_t(p + F(p)) |          (intensities in [0, 1])

Valid pixels pass a forward-backward consistency check (Sundaram et al. 2010, as in Ruder et
al.'s video style transfer): with the forward flow G (t -> t+1) sampled where F points,
``|F + G(p + F)|^2 < 0.01 (|F|^2 + |G(p + F)|^2) + 0.5``, and p + F(p) must land inside frame t.
Flow comes from OpenCV's DIS (no weights needed); the same flow and masks serve the input
(its own error is the floor: interpolation and lighting changes) and every model.

A synthetic clip made by panning or zooming over a still photo has an exactly known flow
(:func:`synthetic_clip`): it checks the estimator and the metric without any estimator error.

Shapes: clips are (T, H, W, 3) uint8 RGB numpy arrays; flows (H, W, 2) float32 (dx, dy).
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import cv2
import numpy as np
import torch

from adaattn_video.image_io import read_image
from adaattn_video.model import StyleTransferModel
from adaattn_video.stylizer import FrameStylizer, StylizerConfig
from training.losses import content_loss, global_style_loss

log = logging.getLogger(__name__)

Motion = Literal["static", "pan", "zoom"]
MOTIONS: tuple[str, ...] = ("static", "pan", "zoom")


# -- flow, warping, masks -----------------------------------------------------------------------
def _grid(height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    return np.meshgrid(
        np.arange(width, dtype=np.float32), np.arange(height, dtype=np.float32), indexing="xy"
    )


def dis_flow(frame_from: np.ndarray, frame_to: np.ndarray) -> np.ndarray:
    """DIS optical flow F with ``frame_from(p) ~ frame_to(p + F(p))``. (H, W, 3) uint8 -> (H, W, 2)."""
    dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)
    a = cv2.cvtColor(frame_from, cv2.COLOR_RGB2GRAY)
    b = cv2.cvtColor(frame_to, cv2.COLOR_RGB2GRAY)
    return dis.calc(a, b, None)


def warp(image: np.ndarray, flow: np.ndarray) -> np.ndarray:
    """``image`` sampled at p + flow(p) (bilinear, borders replicated). (H, W, C) float32."""
    h, w = flow.shape[:2]
    gx, gy = _grid(h, w)
    return cv2.remap(
        image, gx + flow[..., 0], gy + flow[..., 1], cv2.INTER_LINEAR,
        borderMode=cv2.BORDER_REPLICATE,
    )  # fmt: skip


def inside_mask(flow: np.ndarray) -> np.ndarray:
    """True where p + flow(p) lies inside the frame. (H, W, 2) -> (H, W) bool."""
    h, w = flow.shape[:2]
    gx, gy = _grid(h, w)
    x, y = gx + flow[..., 0], gy + flow[..., 1]
    return (x >= 0) & (x <= w - 1) & (y >= 0) & (y <= h - 1)


def consistency_mask(backward: np.ndarray, forward: np.ndarray) -> np.ndarray:
    """Non-occluded pixels of frame t+1: ``backward`` (t+1 -> t) and ``forward`` (t -> t+1)
    flows agree (see the module docstring) and the backward flow stays inside frame t."""
    forward_there = warp(forward, backward)
    mismatch = np.sum((backward + forward_there) ** 2, axis=-1)
    bound = 0.01 * (np.sum(backward**2, axis=-1) + np.sum(forward_there**2, axis=-1)) + 0.5
    return (mismatch < bound) & inside_mask(backward)


@dataclass(frozen=True)
class ClipMotion:
    """Backward flows (t+1 -> t) and valid-pixel masks of each consecutive pair of a clip.

    ``flows``: T-1 arrays (H, W, 2) float32; ``masks``: T-1 arrays (H, W) bool;
    ``source``: "dis" (estimated) or "exact" (a synthetic clip's known motion).
    """

    flows: list[np.ndarray]
    masks: list[np.ndarray]
    source: str

    @property
    def valid_fraction(self) -> float:
        return float(np.mean([m.mean() for m in self.masks]))


def estimate_motion(frames: np.ndarray) -> ClipMotion:
    """DIS flow both ways between consecutive input frames, with occlusion masks."""
    flows, masks = [], []
    for t in range(len(frames) - 1):
        backward = dis_flow(frames[t + 1], frames[t])
        forward = dis_flow(frames[t], frames[t + 1])
        flows.append(backward)
        masks.append(consistency_mask(backward, forward))
    return ClipMotion(flows, masks, "dis")


def _as_float(frames: np.ndarray | Sequence[np.ndarray]) -> list[np.ndarray]:
    out = []
    for f in frames:
        f = np.asarray(f)
        out.append(f.astype(np.float32) / 255.0 if f.dtype == np.uint8 else f.astype(np.float32))
    return out


def warping_error(frames: np.ndarray | Sequence[np.ndarray], motion: ClipMotion) -> float:
    """Mean |o_{t+1} - warp(o_t, F)| over valid pixels and channels, averaged over pairs.

    frames: (T, H, W, 3) uint8 (scaled to [0, 1]) or float in [0, 1]. Pairs with no valid
    pixel are skipped; NaN if none has any.
    """
    frames = _as_float(frames)
    if len(frames) != len(motion.flows) + 1:
        raise ValueError(
            f"expected {len(motion.flows) + 1} frames for this motion, got {len(frames)}"
        )
    errors = []
    for t, (flow, mask) in enumerate(zip(motion.flows, motion.masks, strict=True)):
        if not mask.any():
            continue
        if frames[t + 1].shape[:2] != flow.shape[:2]:
            raise ValueError(
                f"frame size {frames[t + 1].shape[:2]} differs from the flow's {flow.shape[:2]}"
            )
        diff = np.abs(frames[t + 1] - warp(frames[t], flow)).mean(axis=-1)
        errors.append(float(diff[mask].mean()))
    if not errors:
        log.warning("no pixel passed the occlusion check: warping error undefined")
        return math.nan
    return float(np.mean(errors))


# -- synthetic clips with exact motion ----------------------------------------------------------
def _camera(
    motion: Motion, t: int, size: tuple[int, int], source: tuple[int, int], speed: float
) -> np.ndarray:
    """3x3 matrix A_t mapping frame-t pixel coordinates to source-image coordinates."""
    h, w = size
    sh, sw = source
    if motion == "zoom":
        zoom = (1.0 + speed / 100.0) ** t  # magnification grows ``speed`` percent per frame
        scale = (min(sh / h, sw / w) * 0.9) / zoom
        cx, cy = (sw - 1) / 2.0, (sh - 1) / 2.0
        ox, oy = (w - 1) / 2.0, (h - 1) / 2.0
        return np.array(
            [[scale, 0, cx - scale * ox], [0, scale, cy - scale * oy], [0, 0, 1]], dtype=np.float64
        )
    dx = speed * t if motion == "pan" else 0.0
    return np.array([[1, 0, dx], [0, 1, 0], [0, 0, 1]], dtype=np.float64)


def synthetic_clip(
    image: np.ndarray,
    *,
    frames: int = 12,
    size: tuple[int, int] = (64, 64),
    motion: Motion = "pan",
    speed: float = 2.0,
) -> tuple[np.ndarray, ClipMotion]:
    """A clip of a moving virtual camera over a still photo, with its exact flow.

    Args:
        image: (H0, W0, 3) uint8 source photo.
        size: (height, width) of the frames.
        motion: "static" (every frame equal), "pan" (``speed`` pixels per frame to the right
            through the photo) or "zoom" (magnification grows ``speed`` percent per frame).

    Returns:
        frames (T, H, W, 3) uint8, and the exact backward flows. Frame t shows the photo at
        A_t p; so frame t+1's pixel p is frame t's pixel A_t^-1 A_{t+1} p, and
        F(p) = A_t^-1 A_{t+1} p - p. An integer pan makes every frame an exact pixel shift.
    """
    if motion not in MOTIONS:
        raise ValueError(f"motion must be one of {MOTIONS}, got {motion!r}")
    if frames < 2:
        raise ValueError(f"frames must be >= 2, got {frames}")
    h, w = size
    if motion == "zoom":
        # Shrink the photo first (area filter) so the first frame samples it at ~1:1; a
        # bilinear warp far below 1:1 aliases, and aliasing is not motion.
        ratio = 1.0 / (0.9 * min(image.shape[0] / h, image.shape[1] / w))
        if ratio < 1.0:
            target = (round(image.shape[1] * ratio) + 1, round(image.shape[0] * ratio) + 1)
            image = cv2.resize(image, target, interpolation=cv2.INTER_AREA)
    source = image.shape[:2]
    if h > source[0] or (motion == "pan" and w + speed * (frames - 1) > source[1] - 1):
        raise ValueError(
            f"the photo ({source[1]}x{source[0]}) is too small for a {w}x{h} pan of "
            f"{frames} frames at {speed} px/frame"
        )
    cameras = [_camera(motion, t, size, source, speed) for t in range(frames)]
    flags = cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP
    clip = np.stack(
        [
            cv2.warpAffine(image, cam[:2], (w, h), flags=flags, borderMode=cv2.BORDER_REFLECT)
            for cam in cameras
        ]
    )
    gx, gy = _grid(h, w)
    points = np.stack([gx, gy, np.ones_like(gx)], axis=-1).astype(np.float64)  # (H, W, 3)
    flows, masks = [], []
    for t in range(frames - 1):
        relative = np.linalg.inv(cameras[t]) @ cameras[t + 1]
        moved = points @ relative.T
        flow = (moved[..., :2] - points[..., :2]).astype(np.float32)
        flows.append(flow)
        masks.append(inside_mask(flow))
    return clip, ClipMotion(flows, masks, "exact")


def check_metric(
    image: np.ndarray,
    *,
    motion: Motion = "pan",
    frames: int = 12,
    size: tuple[int, int] = (128, 128),
    speed: float = 2.0,
) -> dict[str, float]:
    """How well DIS recovers a synthetic clip's exact motion, and what the metric then says.

    Returns: ``flow_epe_px`` (mean end-point error of DIS vs the exact flow over pixels valid in
    both), ``input_error_exact`` / ``input_error_dis`` (the input's warping error with each
    flow; ~0 with the exact flow up to resampling) and ``valid_fraction_dis``.
    """
    clip, exact = synthetic_clip(image, frames=frames, size=size, motion=motion, speed=speed)
    estimated = estimate_motion(clip)
    epe = [
        float(np.linalg.norm(fe - fx, axis=-1)[me & mx].mean())
        for fe, fx, me, mx in zip(
            estimated.flows, exact.flows, estimated.masks, exact.masks, strict=True
        )
    ]
    return {
        "flow_epe_px": float(np.mean(epe)),
        "input_error_exact": warping_error(clip, exact),
        "input_error_dis": warping_error(clip, estimated),
        "valid_fraction_dis": estimated.valid_fraction,
    }


# -- evaluating models --------------------------------------------------------------------------
@dataclass
class EvalRow:
    """One line of the report. ``model`` "input" is the unstylised clip (the floor). The
    temporal fields name the setting (``off``, 1, None: plain per-frame) and compare its frames
    with the same model's per-frame ones (see :mod:`training.temporal_eval`)."""

    model: str
    style: str | None
    warping_error: float
    style_loss: float | None = None
    content_loss: float | None = None
    fps: float | None = None
    temporal: str = "off"
    keyframe_interval: int = 1
    work_size: int | str | None = None
    long_warping_error: float | None = None
    psnr_vs_per_frame: float | None = None
    mean_abs_diff: float | None = None


_TEMPORAL_FIELDS = (
    "temporal", "keyframe_interval", "work_size", "long_warping_error", "psnr_vs_per_frame",
    "mean_abs_diff",
)  # fmt: skip


@dataclass
class EvalReport:
    clip: str
    frames: int
    height: int
    width: int
    flow: str
    valid_fraction: float
    rows: list[EvalRow] = field(default_factory=list)
    device: str = "cpu"  # where the models ran (resolved, never "auto")
    precision: str = "fp32"  # their convolution precision (resolved, never "auto")

    def to_dict(self) -> dict:
        return asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, allow_nan=True)

    def table(self) -> str:
        """A fixed-width text table (what ``stylestream eval`` prints)."""
        header = (
            "model", "style", "temporal", "kf", "work", "warp err", "long warp", "PSNR vs pf",
            "style loss", "content loss", "fps",
        )  # fmt: skip

        def number(value: float | None, digits: int = 4) -> str:
            return "-" if value is None else f"{value:.{digits}g}"

        lines = [
            (r.model, r.style or "-", r.temporal if r.model != "input" else "-",
             str(r.keyframe_interval), str(r.work_size or "-"), number(r.warping_error),
             number(r.long_warping_error), number(r.psnr_vs_per_frame, 3),
             number(r.style_loss), number(r.content_loss), number(r.fps, 3))
            for r in self.rows
        ]  # fmt: skip
        widths = [max(len(str(c)) for c in col) for col in zip(header, *lines, strict=False)]
        fmt = "  ".join(f"{{:<{w}}}" for w in widths)
        title = (
            f"{self.clip}: {self.frames} frames {self.width}x{self.height}, flow {self.flow}, "
            f"{100 * self.valid_fraction:.1f}% of pixels valid"
            + (f"; models on {self.device} {self.precision}" if len(self.rows) > 1 else "")
        )
        rule = "-" * len(fmt.format(*header))
        return "\n".join([title, fmt.format(*header), rule, *(fmt.format(*row) for row in lines)])


def stylize_clip(stylizer: FrameStylizer, frames: np.ndarray) -> tuple[np.ndarray, float]:
    """Stylise frame by frame (as a live stream would). Returns (T, H, W, 3) uint8 and the fps
    over all frames but the first (warm-up)."""
    outputs = [stylizer(frames[0])]
    sync = torch.cuda.synchronize if stylizer.device.type == "cuda" else (lambda: None)
    sync()
    started = time.perf_counter()
    for frame in frames[1:]:
        outputs.append(stylizer(frame))
    sync()
    elapsed = time.perf_counter() - started
    return np.stack(outputs), (len(frames) - 1) / max(elapsed, 1e-9)


@torch.no_grad()
def clip_losses(
    encoder: torch.nn.Module,
    frames: np.ndarray,
    outputs: np.ndarray,
    style: np.ndarray,
    device: torch.device | str = "cpu",
) -> tuple[float, float]:
    """Unweighted global style loss (outputs vs style) and content loss (outputs vs inputs),
    averaged over frames. Arrays (T, H, W, 3) / (Hs, Ws, 3) uint8."""

    def tensor(a: np.ndarray) -> torch.Tensor:
        return (
            torch.from_numpy(np.ascontiguousarray(a)).to(device).permute(0, 3, 1, 2).float() / 255
        )

    style_feats = encoder(tensor(style[None]))
    style_total = content_total = 0.0
    for frame, output in zip(frames, outputs, strict=True):
        out_feats = encoder(tensor(output[None]))
        style_total += float(global_style_loss(out_feats, style_feats))
        content_total += float(content_loss(out_feats, encoder(tensor(frame[None]))))
    return style_total / len(frames), content_total / len(frames)


def evaluate(
    frames: np.ndarray,
    motion: ClipMotion,
    models: Mapping[str, StyleTransferModel],
    styles: Sequence[str | Path],
    *,
    clip_name: str = "clip",
    device: str = "cpu",
    precision: str = "fp32",
    style_size: int | None = None,
    loss_encoder: torch.nn.Module | None = None,
    settings: Sequence[Any] = (),
    wrap: Callable[[Any, Any], Any] | None = None,
) -> EvalReport:
    """Warping error of the input and of every (model, style); losses when an encoder is given.

    ``settings`` (temporal settings other than plain per-frame) with ``wrap(stylizer,
    setting)`` (the temporal wrapper, from ``streamer``) add one row per (model, style,
    setting) after the per-frame row, measured by :func:`training.temporal_eval.setting_row`.

    ``device``/``precision`` are resolved values (see :func:`adaattn_video.settings.resolve_device`
    and :func:`~adaattn_video.settings.resolve_precision`, which ``stylestream eval`` uses).

    frames: (T, H, W, 3) uint8; motion: from :func:`estimate_motion` (or a synthetic clip's).
    """
    from training.temporal_eval import estimate_long_motions, long_warping_error, measure_setting

    t, h, w = frames.shape[:3]
    report = EvalReport(
        clip_name, t, h, w, motion.source, motion.valid_fraction, device=device, precision=precision
    )
    long_motions = estimate_long_motions(frames)
    report.rows.append(
        EvalRow(
            "input", None, warping_error(frames, motion),
            long_warping_error=long_warping_error(frames, long_motions),
        )
    )  # fmt: skip
    if loss_encoder is not None:
        loss_encoder = loss_encoder.to(device)
    for label, model in models.items():
        stylizer = FrameStylizer(model, StylizerConfig(device, precision, style_size=style_size))
        for style in styles:
            stylizer.set_style(style)
            outputs, fps = stylize_clip(stylizer, frames)
            row = EvalRow(
                label, Path(style).name, warping_error(outputs, motion), fps=fps,
                long_warping_error=long_warping_error(outputs, long_motions),
                psnr_vs_per_frame=math.inf, mean_abs_diff=0.0,
            )  # fmt: skip
            if loss_encoder is not None:
                style_image = read_image(style).permute(1, 2, 0).numpy()
                row.style_loss, row.content_loss = clip_losses(
                    loss_encoder, frames, outputs, style_image, device
                )
            report.rows.append(row)
            log.info(
                "%s with %s: warping error %.5f, %.2f fps", label, row.style, row.warping_error, fps
            )
            for setting in settings if wrap is not None else ():
                numbers = measure_setting(
                    stylizer, setting, wrap, frames, outputs, motion, long_motions,
                    model=label, style=row.style or "-",
                )  # fmt: skip
                report.rows.append(
                    EvalRow(
                        label, row.style, numbers.warping_error, fps=numbers.fps,
                        **{k: getattr(numbers, k) for k in _TEMPORAL_FIELDS},
                    )
                )  # fmt: skip
    return report
