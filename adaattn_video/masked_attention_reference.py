"""Quadratic references of the masked (region) attention in :mod:`adaattn_video.masked_attention`.

Written like the official AdaAttN spatial-control demo (``user_specify_demo.py``): one full
(Nc, Ns) score matrix whose masked entries are filled with -1e15. The linear and fused paths of
:mod:`adaattn_video.masked_attention` are tested against these; nothing at run time uses them.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from adaattn_video.attention_keys import unit_positions
from adaattn_video.attention_reference import stats_from_attention
from adaattn_video.functional import EPS

# The official demo's fill value for masked scores: far below any real score, yet finite, so a
# row with every score masked still gives numbers.
MASKED_SCORE = -1e15


def _scores(kind: str, query: Tensor, key: Tensor) -> Tensor:
    if kind == "cosine":
        return (
            torch.bmm(unit_positions(query.float()).transpose(1, 2), unit_positions(key.float()))
            + 1.0
        )
    return torch.bmm(query.float().transpose(1, 2), key.float())


def demo_masked_attention_stats_quadratic(
    kind: str,
    query: Tensor,
    key: Tensor,
    value: Tensor,
    content_masks: Sequence[Tensor],
    style_masks: Sequence[Tensor],
) -> tuple[Tensor, Tensor]:
    """Reference written like the official demo: ONE style image, hard mask pairs.

    Args:
        query (B, d, Nc), key (B, d, Ns), value (B, C, Ns); content_masks[r] (B, Nc) and
        style_masks[r] (B, Ns) in {0, 1}. Content positions in content mask r may attend only to
        the style positions in style mask r (their other scores are filled with -1e15); content
        positions in no mask attend to the whole style.

    Returns:
        mean, std (B, C, Nc) from the full (Nc, Ns) score matrix.
    """
    scores = _scores(kind, query, key)
    for content_mask, style_mask in zip(content_masks, style_masks, strict=True):
        outside = torch.bmm(
            content_mask.float().unsqueeze(2), (1.0 - style_mask.float()).unsqueeze(1)
        )
        scores = scores.masked_fill(outside.bool(), MASKED_SCORE)
    if kind == "cosine":
        scores = torch.relu(scores)
        attn = scores / (scores.sum(dim=-1, keepdim=True) + EPS)
    else:
        attn = torch.softmax(scores, dim=-1)
    return stats_from_attention(attn, value)


def region_attention_stats_quadratic(
    kind: str,
    query: Tensor,
    keys: Sequence[Tensor],
    values: Sequence[Tensor],
    style_weights: Sequence[Tensor | None],
    weights: Tensor,
) -> tuple[Tensor, Tensor]:
    """Reference of :func:`~adaattn_video.masked_attention.region_attention_stats` with full score matrices, any masks.

    For state k with style keys (1, d, Ns_k), values (1, C, Ns_k) and style weights m (1, Ns_k)
    (None = all ones): cosine attention ``m_j relu(q.k_j + 1) / (sum + 1e-5)``, softmax
    ``softmax_j(q.k_j)`` with the scores of ``m_j = 0`` filled with -1e15 and ``log m_j`` added
    to the rest. Then ``mean = sum_k weights_k mean_k`` (same for std); weights (B, K, Nc).
    """
    b = query.shape[0]
    mean = std = 0.0
    for k_index, (key, value, m) in enumerate(zip(keys, values, style_weights, strict=True)):
        key, value = key.expand(b, -1, -1), value.expand(b, -1, -1)
        scores = _scores(kind, query, key)
        if kind == "cosine":
            scores = torch.relu(scores)
            if m is not None:
                scores = scores * m.float().unsqueeze(1)
            attn = scores / (scores.sum(dim=-1, keepdim=True) + EPS)
        else:
            if m is not None:
                m = m.float().unsqueeze(1).expand_as(scores)
                scores = (scores + m.clamp(min=1e-30).log()).masked_fill(m == 0, MASKED_SCORE)
            attn = torch.softmax(scores, dim=-1)
        m_k, s_k = stats_from_attention(attn, value)
        w = weights[:, k_index].float().unsqueeze(1)
        mean = mean + w * m_k
        std = std + w * s_k
    return mean, std
