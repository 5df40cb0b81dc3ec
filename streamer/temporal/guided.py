"""Edge-aware upsampling of a low-resolution stylization, steered by the full-resolution frame.

The fast guided filter (He & Sun 2015, "Fast Guided Filter") fits, in every (2r+1)^2 window of
the LOW-resolution images, a local linear model of the output p on the guide I (the frame's
luma):

    a = cov(I, p) / (var(I) + eps),   b = mean(p) - a * mean(I)      (box-filtered, per channel)

and evaluates the box-averaged ``a`` and ``b``, upsampled bilinearly, on the full-resolution
guide. Used as it is, that also box-blurs the stylization's own texture (where p does not follow
I, a ~ 0 and the output is ``mean(p)``). So the low-resolution result keeps its texture and only
the guide's missing detail is added, scaled by the local slope:

    out = up(p) + up(a) * (I_full - up(I_low))

Where the stylization follows the content's edges (a != 0), those edges come back at full
resolution; where it does not, the result is the bilinear upsampling. Cost: a few box filters
at low resolution and three full-resolution multiply-adds.

Shapes: (B, C, h, w) low-resolution output, (B, 3, h, w) / (B, 3, H, W) guides, float in [0, 1].
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor

_LUMA = (0.299, 0.587, 0.114)


def luma(images: Tensor) -> Tensor:
    """(B, 3, H, W) RGB -> (B, 1, H, W) BT.601 luma."""
    weights = images.new_tensor(_LUMA).view(1, 3, 1, 1)
    return (images * weights).sum(dim=1, keepdim=True)


def box(images: Tensor, radius: int) -> Tensor:
    """Mean over (2r+1)^2 windows (windows cut at the borders), same size."""
    return F.avg_pool2d(images, 2 * radius + 1, stride=1, padding=radius, count_include_pad=False)


def guided_slope(low: Tensor, guide_low: Tensor, radius: int, eps: float) -> Tensor:
    """The box-averaged slope ``a`` of the local model ``low ~ a * guide_low + b``.

    low (B, C, h, w), guide_low (B, 1, h, w) -> (B, C, h, w)."""
    mean_i = box(guide_low, radius)
    mean_p = box(low, radius)
    cov = box(guide_low * low, radius) - mean_i * mean_p
    var = box(guide_low * guide_low, radius) - mean_i * mean_i
    return box(cov / (var + eps), radius)


def guided_upsample(
    low: Tensor,
    guide_low: Tensor,
    guide_full: Tensor,
    *,
    radius: int = 2,
    eps: float = 1e-3,
) -> Tensor:
    """Upsample ``low`` (B, C, h, w) to the size of ``guide_full`` (B, 3, H, W), edge-aware.

    ``guide_low`` (B, 3, h, w) is the frame at the low resolution, as the model saw it.
    Returns (B, C, H, W) float32 clamped to [0, 1]."""
    size = tuple(guide_full.shape[-2:])
    low = low.float()
    slope = guided_slope(low, luma(guide_low.float()), radius, eps)

    def up(x: Tensor) -> Tensor:
        return F.interpolate(x, size=size, mode="bilinear", align_corners=False)

    detail = luma(guide_full.float()) - up(luma(guide_low.float()))
    return up(low).addcmul_(up(slope), detail).clamp_(0.0, 1.0)


__all__ = ["box", "guided_slope", "guided_upsample", "luma"]
