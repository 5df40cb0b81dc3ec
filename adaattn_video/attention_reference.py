"""Quadratic reference forms of the attention statistics in :mod:`adaattn_video.attention`.

The published formulation: one full (Nc, Ns) score matrix per call. The linear (cosine) and
fused (softmax) paths are tested against these, and ``bench model`` times them as the
published baseline (:meth:`~adaattn_video.attention.AdaAttN.forward_quadratic`).
Shapes: query (B, d, Nc), key (B, d, Ns), value (B, C, Ns); results (B, C, Nc) float32.
"""

from __future__ import annotations

import torch
from torch import Tensor

from adaattn_video.attention_keys import unit_positions
from adaattn_video.functional import EPS


def stats_from_attention(attn: Tensor, value: Tensor) -> tuple[Tensor, Tensor]:
    """Mean and std (B, C, Nc) of ``value`` (B, C, Ns) under attention weights ``attn``
    (B, Nc, Ns), each row summing to one: ``std = sqrt(relu(E[V^2] - M^2))``."""
    v = value.float().transpose(1, 2)  # (B, Ns, C)
    mean = torch.bmm(attn, v)
    std = torch.relu(torch.bmm(attn, v * v) - mean * mean).sqrt()
    return mean.transpose(1, 2), std.transpose(1, 2)


def cosine_attention_stats_quadratic(
    query: Tensor, key: Tensor, value: Tensor
) -> tuple[Tensor, Tensor]:
    """Reference form of :func:`~adaattn_video.attention.cosine_attention_stats` with the full (Nc, Ns) score matrix.

    Args: query (B, d, Nc), key (B, d, Ns), value (B, C, Ns). Returns mean, std (B, C, Nc).
    """
    q = unit_positions(query.float()).transpose(1, 2)
    k = unit_positions(key.float())
    scores = torch.relu(torch.bmm(q, k) + 1.0)  # (B, Nc, Ns)
    attn = scores / (scores.sum(dim=-1, keepdim=True) + EPS)
    return stats_from_attention(attn, value)


def softmax_attention_stats_quadratic(
    query: Tensor, key: Tensor, value: Tensor
) -> tuple[Tensor, Tensor]:
    """Reference form of :func:`~adaattn_video.attention.softmax_attention_stats` (explicit softmax over the score matrix)."""
    q = query.float().transpose(1, 2)
    attn = torch.softmax(torch.bmm(q, key.float()), dim=-1)
    return stats_from_attention(attn, value)
