"""How far a reduced precision moves the output from float32, on the bundled photos.

Speed is only worth having at the default precision if the pictures stay the same: this module
stylizes real photos (``adaattn_video/assets``) through :class:`FrameStylizer` (uint8 in, uint8
out, as every command does) in float32 and in each requested precision, and reports PSNR and the
max / mean absolute difference in 1/255 steps. ``stylestream bench fidelity`` prints it; a test
keeps the default (``auto``) above :data:`MIN_DEFAULT_PSNR_DB` for both models.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from adaattn_video.assets import DEFAULT_STYLE, content_images
from adaattn_video.exact_fp32 import ieee_fp32, tf32_setting
from adaattn_video.image_io import read_image
from adaattn_video.model import StyleTransferModel
from adaattn_video.stylizer import FrameStylizer, StylizerConfig, resolve_precision
from benchmarks.timing import markdown_table

# The default precision must stay this close to float32 (40 dB: RMS error ~2.5/255).
MIN_DEFAULT_PSNR_DB = 40.0


@dataclass(frozen=True)
class FidelityRow:
    """One model at one precision against float32, over every photo.

    ``psnr_db`` is the worst photo's; ``max_abs`` the largest pixel difference and ``mean_abs``
    the mean over all pixels (both in 1/255 steps); ``over_8`` the fraction of pixel values
    more than 8/255 off.
    """

    variant: str
    precision: str  # as requested ("auto", "bf16", ...)
    resolved: str  # what ran ("bf16", ...)
    photos: int
    psnr_db: float
    max_abs: int
    mean_abs: float
    over_8: float
    fp32_setting: str = ""  # float32 convolutions/matmuls of the measured run (TF32 or IEEE)


def psnr_db(a: np.ndarray, b: np.ndarray) -> float:
    """PSNR of two uint8 images in dB (inf when equal)."""
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return math.inf if mse == 0 else 10.0 * math.log10(255.0**2 / mse)


def _resize_longer(image: torch.Tensor, size: int | None) -> np.ndarray:
    """(3, H, W) uint8 -> (H', W', 3) uint8 numpy with the longer side ``size``."""
    if size is not None:
        h, w = image.shape[-2:]
        scale = size / max(h, w)
        new = (max(16, round(h * scale)), max(16, round(w * scale)))
        image = (
            torch.nn.functional.interpolate(
                image[None].float(), size=new, mode="bilinear", antialias=True, align_corners=False
            )[0]
            .round()
            .clamp(0, 255)
            .to(torch.uint8)
        )
    return image.permute(1, 2, 0).contiguous().numpy()


def measure_fidelity(
    model: StyleTransferModel,
    variant: str,
    precisions: Sequence[str],
    *,
    device: str = "cpu",
    photos: Sequence[str | Path] | None = None,
    style: str | Path = DEFAULT_STYLE,
    size: int | None = 384,
    style_size: int = 256,
) -> list[FidelityRow]:
    """One :class:`FidelityRow` per precision in ``precisions`` ("auto" included), each against
    float32 on the same device. Each precision runs on a copy of ``model`` (casting weights to
    bf16 and back would round them). ``photos`` default to every bundled content photo,
    resized to ``size`` (longer side)."""
    images = [_resize_longer(read_image(p), size) for p in (photos or content_images())]

    def outputs(precision: str) -> list[np.ndarray]:
        stylizer = FrameStylizer(
            copy.deepcopy(model),
            StylizerConfig(device=device, precision=precision, style_size=style_size),
        )
        stylizer.set_style(style)
        return [stylizer(image) for image in images]

    with ieee_fp32(device):  # the reference is IEEE float32, not CUDA's default TF32
        reference = outputs("fp32")
    rows = []
    for precision in precisions:
        resolved = resolve_precision(precision, device)
        got = outputs(resolved)
        diffs = [
            np.abs(a.astype(np.int16) - b.astype(np.int16))
            for a, b in zip(got, reference, strict=True)
        ]
        rows.append(
            FidelityRow(
                variant=variant,
                precision=precision,
                resolved=resolved,
                photos=len(images),
                psnr_db=min(psnr_db(a, b) for a, b in zip(got, reference, strict=True)),
                max_abs=int(max(int(d.max()) for d in diffs)),
                mean_abs=float(np.mean([d.mean() for d in diffs])),
                over_8=float(np.mean([(d > 8).mean() for d in diffs])),
                fp32_setting=tf32_setting(),
            )
        )
    return rows


def format_fidelity(rows: Sequence[FidelityRow]) -> str:
    """A Markdown table of ``rows`` (the numbers of :func:`rows_as_dicts`)."""
    header = [
        "model", "precision", "PSNR vs fp32 (worst photo)", "max abs diff", "mean abs diff",
        "pixels > 8/255",
    ]  # fmt: skip
    cells = [
        [
            r.variant,
            r.precision if r.precision == r.resolved else f"{r.precision} ({r.resolved})",
            f"{r.psnr_db:.1f} dB",
            f"{r.max_abs}/255",
            f"{r.mean_abs:.2f}/255",
            f"{100 * r.over_8:.2f} %",
        ]
        for r in rows
    ]
    table = markdown_table(header, cells, pad=False)
    if rows:  # the reference is always IEEE; the measured runs use the defaults (TF32 on CUDA)
        table += f"\n\nreference: IEEE fp32; measured runs: {rows[0].fp32_setting}"
    return table


def rows_as_dicts(rows: Sequence[FidelityRow]) -> list[dict]:
    return [asdict(r) for r in rows]
