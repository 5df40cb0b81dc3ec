"""Small pure functions shared by the model, the losses and the tests."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

EPS = 1e-5


def mean_std(features: Tensor, eps: float = EPS) -> tuple[Tensor, Tensor]:
    """Per-sample, per-channel mean and std over positions.

    Args:
        features: (B, C, H, W).

    Returns:
        mean, std: (B, C, 1, 1); std = sqrt(unbiased var + eps), as in the reference code.
    """
    b, c = features.shape[:2]
    flat = features.reshape(b, c, -1)
    var = flat.var(dim=2, unbiased=True) + eps
    return flat.mean(dim=2).view(b, c, 1, 1), var.sqrt().view(b, c, 1, 1)


def mean_variance_norm(features: Tensor) -> Tensor:
    """``norm(x)`` of SPEC: (x - mean_hw) / sqrt(unbiased var_hw + 1e-5). Shape kept (B, C, H, W)."""
    mean, std = mean_std(features)
    return (features - mean) / std


def attention_key(taps: list[Tensor]) -> Tensor:
    """The "shallow + deep" key of SPEC section 2.

    Args:
        taps: features relu1_1 .. relu_L in order, each (B, C_i, H_i, W_i).

    Returns:
        (B, sum C_i, H_L, W_L): every tap resized (nearest) to the last one's size, then normalized.
        Computed in float32 whatever the input precision (the variance cancels badly in half).
    """
    size = taps[-1].shape[-2:]
    parts = []
    for tap in taps:
        if tap.shape[-2:] != size:  # nearest: exact in any dtype, so resize before the cast
            tap = F.interpolate(tap, size=size, mode="nearest")
        parts.append(mean_variance_norm(tap.float()))
    return torch.cat(parts, dim=1)
