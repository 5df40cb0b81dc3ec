"""Attention keys: the "shallow + deep" content/style key built from the encoder taps and its
1x1 projection, without ever materialising the normalised key.

The key (AdaAttN paper, section 3.2) is each tap relu1_1 .. relu_L resized (nearest) to relu_L's size and
normalised per channel; :func:`project_key` folds that normalisation into the projection's
weights so one matmul reads the taps. Shapes are position-major, (B, N, C), the memory order of
channels-last feature maps.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from adaattn_video.functional import EPS, tracing


def unit_positions(x: Tensor) -> Tensor:
    """Each position's vector divided by (its L2 norm + 1e-5). (B, d, N) -> (B, d, N)."""
    return x / (x.norm(dim=1, keepdim=True) + EPS)


def position_stats(x: Tensor) -> tuple[Tensor, Tensor]:
    """Per-channel mean and 1 / sqrt(unbiased variance + 1e-5) over positions.

    Args:
        x: (B, N, C) float32 (position-major: the memory order of channels-last).

    Returns:
        mean, inv_std: (B, C) float32; the statistics of
        :func:`~adaattn_video.functional.mean_variance_norm`.

    Plain sums of ``x`` and ``x * x``: ``var_mean`` and ``vector_norm`` over the middle
    dimension are 4-5x slower on CPUs.
    """
    n = x.shape[1]
    total = x.sum(dim=1)
    squares = (x * x).sum(dim=1)
    mean = total / n
    var = (squares - total * mean).clamp_min(0.0) / max(n - 1, 1)
    return mean, (var + EPS).rsqrt()


def at_size(tap: Tensor, size: tuple[int, int]) -> Tensor:
    """(B, C, H, W) -> (B, h, w, C) view at ``size`` (nearest; an exact stride when it divides).

    (B, h, w, C) is the memory order of channels-last tensors: a view, no copy, for those.
    """
    h, w = size
    if tuple(tap.shape[-2:]) != (h, w):
        sh, sw = tap.shape[-2] // h, tap.shape[-1] // w
        if sh * h == tap.shape[-2] and sw * w == tap.shape[-1] and not tracing():
            tap = tap[:, :, ::sh, ::sw]  # what nearest resizing by an integer factor picks
        else:
            tap = F.interpolate(tap, size=(h, w), mode="nearest")
    return tap.permute(0, 2, 3, 1)


@dataclass(frozen=True)
class KeyParts:
    """The taps relu1_1 .. relu_L side by side at relu_L's size, position-major.

    ``x`` (B, N, D) in the taps' dtype, ``x32`` the same in float32 (``x`` itself when that is
    float32), ``mean`` and ``inv_std`` (B, D) its per-channel :func:`position_stats`. The last
    ``C_L`` channels are relu_L itself, the AdaAttN content: its statistics and float32 copy are
    reused for the output (:func:`~adaattn_video.attention.renormalize`).
    """

    x: Tensor
    x32: Tensor
    mean: Tensor
    inv_std: Tensor

    @classmethod
    def from_taps(cls, taps: Sequence[Tensor]) -> KeyParts:
        size = (taps[-1].shape[-2], taps[-1].shape[-1])
        b, n = taps[-1].shape[0], size[0] * size[1]
        views = [at_size(tap, size) for tap in taps]
        if len(views) == 1:
            x = views[0].reshape(b, n, -1)
        else:  # one copy, straight from the strided views
            x = torch.cat(views, dim=-1).reshape(b, n, -1)
        x32 = x.float()
        mean, inv_std = position_stats(x32)
        return cls(x, x32, mean, inv_std)

    def last(self, channels: int) -> tuple[Tensor, Tensor, Tensor]:
        """float32 values (B, N, C), mean and inv_std (B, C) of the last ``channels`` channels."""
        return (
            self.x32[..., -channels:],
            self.mean[:, -channels:],
            self.inv_std[:, -channels:],
        )


def project_key(
    taps: Sequence[Tensor],
    conv: nn.Conv2d,
    dtype: torch.dtype,
    parts: KeyParts | None = None,
) -> Tensor:
    """``conv(attention_key(taps))`` (a 1x1 projection of the "shallow + deep" key), position-major.

    The key is each tap resized (nearest) to the last tap's size and normalised per channel,
    ``(x - mu) / sigma``; that normalisation is folded into the projection's weights
    (``W / sigma`` and ``b - W mu / sigma``, per sample), so the normalised 448-1472 channel
    key is never built: one matmul reads the taps. Statistics and folded weights are float32;
    the matmul runs in ``dtype`` (bf16 only where the convolutions do).

    Args:
        taps: relu1_1 .. relu_L, each (B, C_i, H_i, W_i), in any float dtype and layout.
        conv: the key projection (``f`` or ``g``), sum C_i -> d channels, 1x1.
        dtype: float32 or bfloat16.
        parts: :class:`KeyParts` of ``taps`` when the caller has them already.

    Returns:
        (B, N, d), N = H_L * W_L, in ``dtype``.
    """
    parts = parts or KeyParts.from_taps(taps)
    bias, weight_t = folded_projection(conv, parts.mean, parts.inv_std, dtype)
    x = parts.x32 if dtype == torch.float32 else parts.x.to(dtype)
    return torch.baddbmm(bias, x, weight_t)


def folded_projection(
    conv: nn.Conv2d, mean: Tensor, inv_std: Tensor, dtype: torch.dtype
) -> tuple[Tensor, Tensor]:
    """``conv`` with the key normalisation ``(x - mean) * inv_std`` (both (B, D)) folded in:
    bias (B, 1, d) and transposed weight (B, D, d) in ``dtype``, for ``baddbmm(bias, x, w)``."""
    weight = conv.weight.float().flatten(1) * inv_std.unsqueeze(1)  # (B, d, D)
    bias = conv.bias.float() - torch.bmm(weight, mean.unsqueeze(2)).squeeze(2)  # (B, d)
    return bias.unsqueeze(1).to(dtype), weight.transpose(1, 2).to(dtype)
