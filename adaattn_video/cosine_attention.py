"""Cosine attention made linear (AdaAttN with ``relu(q.k + 1)`` scores, the video default).

Scores ``relu(q.k + 1)`` with unit keys are ``q.k + 1`` (never negative), linear in k, so every
style-side sum is computed once per style (:class:`CosineStyleSums`) and a frame costs
O(Nc * d * C) with no Nc x Ns matrix and no dependence on the style's size.
:func:`cosine_adaattn_blocked` is the inference path of one frame batch, in blocks of rows whose
size depends on the device (:func:`block_positions`): small blocks that stay in a CPU's cache,
one large block on GPUs, where every block costs a dozen kernel launches.

Precision: statistics, the variance step and the output are float32; the two per-frame matmuls
(key projection, style sums) may run in bf16 (the sums hold centred values, so the variance step
stays accurate).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from adaattn_video.attention_keys import at_size, folded_projection, unit_positions
from adaattn_video.functional import EPS
from adaattn_video.temporal_stats import filter_stats


@dataclass(frozen=True)
class CosineStyleSums:
    """Per-style sums that make cosine attention linear (the cosine form of the published video model).

    With unit style keys k_j, values V_j, their mean c = mean_j V_j and n style positions,
    one matrix holds every sum a frame needs, divided by n, values centred on c:

        weight (S, d + 1, 1 + 2C) = [[ mean_j k_j,   mean_j k_j (V_j - c)^T,  mean_j k_j ((V_j - c)^2)^T ],
                                     [ 1 + 1e-5/n,   mean_j (V_j - c),        mean_j (V_j - c)^2         ]]

    For a content key q with rho = |q| + 1e-5, ``[q, rho] @ weight`` = rho/n * [denominator,
    numerator of M - c, numerator of E[(V - c)^2]] of the attention; the common factor
    cancels in the ratios. So a frame needs ONE matmul and no normalisation pass over q, and
    because the values are centred, ``E[(V-c)^2] - (M-c)^2`` does not cancel catastrophically
    (the raw ``E[V^2] - M^2`` does), which lets that matmul run in bf16 when the convolutions
    do. Dividing by n keeps every entry of order one whatever the style's size.
    Shapes: S = number of styles (1 broadcasts over every frame), d key and C value channels.
    """

    weight: Tensor
    center: Tensor  # (S, 1, C) c
    count: Tensor  # (S, 1, 1) n

    @classmethod
    def from_style(cls, key: Tensor, value: Tensor, mask: Tensor | None = None) -> CosineStyleSums:
        """Sums of unit style keys ``key`` (B, d, Ns), already projected, and values (B, C, Ns).

        ``mask`` (B, 1, Ns) in [0, 1] weights style position j by m_j (a style mask: regions):
        every mean above becomes ``sum_j m_j (.) / n`` with ``n = sum_j m_j`` and c the
        m-weighted mean, so :func:`cosine_stats_positions` gives the masked attention
        ``m_j relu(q.k_j + 1) / (sum_j m_j relu(q.k_j + 1) + 1e-5)`` unchanged."""
        k = unit_positions(key.float())
        v = value.float()
        if mask is None:
            n = torch.full_like(v[:, :1, :1], v.shape[2])  # (B, 1, 1)
            center = v.mean(dim=2, keepdim=True)  # (B, C, 1)
        else:
            m = mask.float()
            n = m.sum(dim=2, keepdim=True)
            center = (v * m).sum(dim=2, keepdim=True) / n
        centred = v - center
        columns = torch.cat([torch.ones_like(v[:, :1]), centred, centred * centred], dim=1)
        if mask is not None:
            columns = columns * m
        weight = (
            torch.cat(
                [torch.bmm(k, columns.transpose(1, 2)), columns.sum(dim=2).unsqueeze(1)], dim=1
            )
            / n
        )  # (B, d + 1, 1 + 2C)
        weight[:, -1, 0] += EPS / n[:, 0, 0]
        return cls(weight=weight, center=center.transpose(1, 2), count=n)

    @property
    def channels(self) -> int:
        return (self.weight.shape[-1] - 1) // 2


def cosine_stats_positions(
    query: Tensor, sums: CosineStyleSums, dtype: torch.dtype = torch.float32
) -> tuple[Tensor, Tensor]:
    """Attention-weighted mean and std in linear time, position-major.

    Args:
        query: (B, N, d) projected content keys (not normalised), any float dtype.
        sums: the style's :class:`CosineStyleSums` (S = 1 or S = B).
        dtype: precision of the one matmul (float32, or bfloat16 with float32 accumulation
            where the convolutions run in bf16: the centred sums keep it accurate).

    Returns:
        mean, std: (B, N, C) float32.
    """
    c = sums.channels
    b = query.shape[0]
    query = query.to(dtype)
    # |q| in the matmul's dtype: it is rounded to that dtype in q anyway.
    rho = torch.linalg.vector_norm(query, dim=-1, keepdim=True) + EPS
    q = torch.cat([query, rho], dim=-1)  # (B, N, d + 1)
    out = torch.bmm(q, sums.weight.to(dtype).expand(b, -1, -1))  # (B, N, 1 + 2C)
    inv_den = out[..., :1].float().reciprocal()  # (B, N, 1)
    if torch.is_grad_enabled():  # training: no in-place ops on tensors autograd keeps
        moments = out[..., 1:].float() * inv_den
        mean_c, second = moments[..., :c], moments[..., c:]
        std = (second - mean_c * mean_c).clamp_min(0.0).sqrt()
        return mean_c + sums.center, std
    # One float32 copy, then in place: [M - c, E[(V - c)^2]] -> [M, std].
    moments = out[..., 1:].to(torch.float32, copy=True).mul_(inv_den)
    mean_c, var = moments[..., :c], moments[..., c:]
    std = var.addcmul_(mean_c, mean_c, value=-1.0).clamp_min_(0.0).sqrt_()
    return mean_c.add_(sums.center), std


def cosine_attention_stats(query: Tensor, sums: CosineStyleSums) -> tuple[Tensor, Tensor]:
    """Attention-weighted mean and std in linear time, float32.

    Args:
        query: (B, d, Nc) projected content keys (not yet unit-normalized).
        sums: the style's :class:`CosineStyleSums` (S = 1 or S = B).

    Returns:
        mean, std: (B, C, Nc) float32.
    """
    mean, std = cosine_stats_positions(query.transpose(1, 2), sums)
    return mean.transpose(1, 2), std.transpose(1, 2)


# Positions per block of :func:`cosine_adaattn_blocked` on a CPU: its float32 temporaries (about
# 4 KiB per position) stay in the cache instead of streaming through memory.
BLOCK_POSITIONS = 2048
# On GPUs (CUDA, MPS) a block costs a dozen kernel launches whatever its size, so blocks are as
# large as memory allows: 2**16 positions (256 MiB of temporaries per frame) is all of a 720p
# frame's relu3_1 map in one block, two at 1080p (was ~1000 and ~2100 ops per frame).
GPU_BLOCK_POSITIONS = 2**16


def block_positions(device: torch.device | str) -> int:
    """Positions per block of :func:`cosine_adaattn_blocked` on ``device`` (see above)."""
    return BLOCK_POSITIONS if torch.device(device).type == "cpu" else GPU_BLOCK_POSITIONS


def cosine_adaattn_blocked(
    content: Tensor,
    key_taps: Sequence[Tensor],
    conv: nn.Conv2d,
    sums: CosineStyleSums,
    dtype: torch.dtype,
    out_dtype: torch.dtype = torch.float32,
) -> Tensor:
    """Cosine AdaAttN of one frame batch, in blocks of rows (inference only, no autograd).

    The same computation as :func:`project_key` + :func:`cosine_stats_positions` +
    :func:`renormalize`, but one block of about :data:`BLOCK_POSITIONS` positions at a time
    after a first pass for the per-channel statistics (:func:`block_positions`: far larger
    blocks on GPUs, where launches dominate). At 720p the unblocked form moves
    ~0.5 GB of float32 temporaries through memory (and through fresh pages) per frame; in
    blocks they stay in the cache, which is what keeps the attention's share of a bf16 frame
    flat from 360p to 1080p.

    Args:
        content: (B, C, H, W), the last of ``key_taps`` (relu_L).
        key_taps: relu1_1 .. relu_L, any float dtype and layout.
        conv: the content key projection ``f``.
        sums: the style's :class:`CosineStyleSums`.
        dtype: precision of the two matmuls (float32 or bfloat16).
        out_dtype: dtype of the result (computed in float32, rounded once at the end).

    Returns:
        (B, C, H, W) in ``out_dtype``, channels-last memory order.
    """
    b, c, h, w = content.shape
    views = [at_size(tap, (h, w)) for tap in key_taps]  # (B, h, w, C_i) views
    step = max(1, block_positions(content.device) // w)
    blocks = [(r, min(r + step, h)) for r in range(0, h, step)]

    def block(r0: int, r1: int) -> Tensor:
        x = (
            torch.cat([v[:, r0:r1] for v in views], dim=-1)
            if len(views) > 1
            else views[0][:, r0:r1]
        )
        return x.reshape(b, (r1 - r0) * w, -1)

    total = squares = None
    for r0, r1 in blocks:  # pass 1: per-channel statistics of every key channel
        x = block(r0, r1).float()
        part_total, part_squares = x.sum(dim=1), (x * x).sum(dim=1)
        total = part_total if total is None else total.add_(part_total)
        squares = part_squares if squares is None else squares.add_(part_squares)
    assert total is not None and squares is not None
    n = h * w
    mean = total / n
    inv_std = ((squares - total * mean).clamp_min(0.0) / max(n - 1, 1) + EPS).rsqrt()
    bias, weight_t = folded_projection(conv, mean, inv_std, dtype)
    inv_c = inv_std[:, -c:].unsqueeze(1)  # the content's own statistics (its last channels)
    shift = -mean[:, -c:].unsqueeze(1) * inv_c
    out = torch.empty((b, h, w, c), dtype=out_dtype, device=content.device)
    for r0, r1 in blocks:  # pass 2: project, attend, renormalise
        x = block(r0, r1)
        query = torch.baddbmm(bias, x.to(dtype), weight_t)
        attn_mean, attn_std = cosine_stats_positions(query, sums, dtype)
        attn_mean, attn_std = filter_stats(attn_mean, attn_std, (r0, r1), (h, w))  # temporal
        normed = torch.addcmul(shift, x[..., -c:].float(), inv_c)
        normed.mul_(attn_std).add_(attn_mean)
        out[:, r0:r1].copy_(normed.view(b, r1 - r0, w, c))
    return out.permute(0, 3, 1, 2)
