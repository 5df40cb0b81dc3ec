"""Warping and blending on the stylizer's device (torch ``grid_sample``).

The flow and its mask come small from the CPU (:mod:`streamer.temporal.flow`); they are
upsampled to the output size here (flow vectors scaled by the size ratio), the reference output
is sampled at p + flow(p), and blended into the current output with a per-pixel weight.

Shapes: images (B, C, H, W) float on the device; flows (B, 2, H, W) (dx, dy) in output pixels;
weights (B, 1, H, W) in [0, 1].
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor


def flow_to_device(
    flow: np.ndarray, valid: np.ndarray, size: tuple[int, int], device: torch.device
) -> tuple[Tensor, Tensor]:
    """Small (h, w, 2) flow and (h, w) mask -> (1, 2, H, W) flow in output pixels and
    (1, 1, H, W) mask in [0, 1] (bilinear: soft at the mask's borders)."""
    h, w = flow.shape[:2]
    height, width = size
    small = torch.from_numpy(np.ascontiguousarray(flow)).to(device).permute(2, 0, 1)[None]
    mask = torch.from_numpy(np.ascontiguousarray(valid)).to(device)[None, None]
    if (h, w) != (height, width):
        small = F.interpolate(small, size=size, mode="bilinear", align_corners=False)
        small = small * small.new_tensor([width / w, height / h]).view(1, 2, 1, 1)
        mask = F.interpolate(mask, size=size, mode="bilinear", align_corners=False)
    return small, mask


def warp(image: Tensor, flow: Tensor) -> Tensor:
    """``image`` sampled at p + flow(p) (bilinear, borders replicated): (B, C, H, W)."""
    b, _, h, w = image.shape
    ys = torch.arange(h, device=image.device, dtype=torch.float32)
    xs = torch.arange(w, device=image.device, dtype=torch.float32)
    gy, gx = torch.meshgrid(ys, xs, indexing="ij")
    x = (gx + flow[:, 0]) * (2.0 / max(w - 1, 1)) - 1.0
    y = (gy + flow[:, 1]) * (2.0 / max(h - 1, 1)) - 1.0
    grid = torch.stack([x, y], dim=-1).expand(b, -1, -1, -1)
    return F.grid_sample(
        image.float(), grid, mode="bilinear", padding_mode="border", align_corners=True
    )


def blend(current: Tensor, reference: Tensor, weight: Tensor) -> Tensor:
    """``current + weight * (reference - current)``: the reference where weight = 1."""
    return torch.lerp(current, reference, weight)


__all__ = ["blend", "flow_to_device", "warp"]
