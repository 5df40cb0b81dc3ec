"""Attention normalization (AdaAttN, SPEC section 3) with both attention kinds.

Shapes: keys are (B, d, N), values (B, C, N), with N = H * W positions. Everything here runs
in float32 whatever the caller's precision: the ``E[V^2] - M^2`` step cancels badly in half.

* Cosine (SPEC 3b, the video default): scores ``relu(q.k + 1)`` are linear in k, so every
  style-side sum is computed once per style (:class:`CosineStyleSums`) and a frame costs
  O(Nc * d * C) with no Nc x Ns matrix and no dependence on the style's size.
* Softmax (SPEC 3a): exact, with ``[V, V^2]`` attended in one fused
  ``scaled_dot_product_attention`` call (no random subsampling of style positions).

The quadratic forms are kept as the reference the fast paths are tested against.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from adaattn_video.config import AttentionKind
from adaattn_video.functional import EPS, mean_variance_norm


def _no_autocast(x: Tensor) -> torch.autocast:
    """Turn off an enclosing ``torch.autocast`` (training with AMP): it would recast the matmuls
    below to half precision despite the ``.float()`` calls."""
    return torch.autocast(device_type=x.device.type, enabled=False)


def unit_positions(x: Tensor) -> Tensor:
    """Each position's vector divided by (its L2 norm + 1e-5). (B, d, N) -> (B, d, N)."""
    return x / (x.norm(dim=1, keepdim=True) + EPS)


@dataclass(frozen=True)
class CosineStyleSums:
    """Per-style sums that make cosine attention linear (SPEC 3b). All float32.

    With unit style keys k_j and values V_j (S = number of styles in the batch, 1 broadcasts
    over every frame), the sums are stored fused so a frame needs ONE matmul:

        bias   (S, 1, 1 + 2C) = [n,     sum_j V_j,      sum_j V_j^2       ]
        weight (S, d, 1 + 2C) = [kappa, sum_j k_j V_j^T, sum_j k_j (V_j^2)^T]

    and ``bias + q^T weight`` = [denominator - 1e-5, numerator of M, numerator of E[V^2]].
    """

    bias: Tensor
    weight: Tensor

    @classmethod
    def from_style(cls, key: Tensor, value: Tensor) -> CosineStyleSums:
        """Sums of unit style keys ``key`` (B, d, Ns), already projected, and values (B, C, Ns)."""
        k = unit_positions(key.float())
        v = value.float()
        ones = torch.ones_like(v[:, :1])
        columns = torch.cat([ones, v, v * v], dim=1)  # (B, 1 + 2C, Ns)
        return cls(
            bias=columns.sum(dim=2).unsqueeze(1),
            weight=torch.bmm(k, columns.transpose(1, 2)),
        )

    @property
    def channels(self) -> int:
        return (self.weight.shape[-1] - 1) // 2

    @property
    def count(self) -> Tensor:
        """(S, 1, 1) number of style positions n."""
        return self.bias[..., :1]

    @property
    def p1(self) -> Tensor:
        """(S, d, C) sum_j k_j V_j^T."""
        return self.weight[..., 1 : 1 + self.channels]


def cosine_attention_stats(query: Tensor, sums: CosineStyleSums) -> tuple[Tensor, Tensor]:
    """Attention-weighted mean and std in linear time.

    Args:
        query: (B, d, Nc) projected content keys (not yet unit-normalized).
        sums: the style's :class:`CosineStyleSums` (S = 1 or S = B).

    Returns:
        mean, std: (B, C, Nc) float32.
    """
    c = sums.channels
    q = unit_positions(query.float()).transpose(1, 2)  # (B, Nc, d)
    out = torch.baddbmm(
        sums.bias.expand(q.shape[0], -1, -1), q, sums.weight.expand(q.shape[0], -1, -1)
    )
    moments = out[..., 1:] / (out[..., :1] + EPS)  # (B, Nc, 2C): [M, E[V^2]]
    mean, second = moments[..., :c], moments[..., c:]
    std = torch.relu(second - mean * mean).sqrt()
    return mean.transpose(1, 2), std.transpose(1, 2)


def cosine_attention_stats_quadratic(
    query: Tensor, key: Tensor, value: Tensor
) -> tuple[Tensor, Tensor]:
    """Reference form of :func:`cosine_attention_stats` with the full (Nc, Ns) score matrix.

    Args: query (B, d, Nc), key (B, d, Ns), value (B, C, Ns). Returns mean, std (B, C, Nc).
    """
    q = unit_positions(query.float()).transpose(1, 2)
    k = unit_positions(key.float())
    scores = torch.relu(torch.bmm(q, k) + 1.0)  # (B, Nc, Ns)
    attn = scores / (scores.sum(dim=-1, keepdim=True) + EPS)
    v = value.float().transpose(1, 2)  # (B, Ns, C)
    mean = torch.bmm(attn, v)
    std = torch.relu(torch.bmm(attn, v * v) - mean * mean).sqrt()
    return mean.transpose(1, 2), std.transpose(1, 2)


# Most score-matrix elements one SDPA call may hold if it falls back to its math kernel
# (2**26 float32 = 256 MiB): queries are processed in blocks below that.
MAX_SCORES_PER_CALL = 2**26


def softmax_attention_stats(query: Tensor, key: Tensor, value: Tensor) -> tuple[Tensor, Tensor]:
    """Exact softmax attention statistics (no 1/sqrt(d) scale), fused.

    ``[V, V^2]`` are attended together with ``scaled_dot_product_attention``, whose flash and
    memory-efficient kernels never hold the (Nc, Ns) matrix. Those kernels need contiguous inputs
    with one head size, so the narrower side is zero-padded (zeros change neither q.k nor the
    output columns kept). Where no fused kernel takes the shapes (head sizes above a GPU
    kernel's limit), SDPA computes the matrix: queries go in blocks of at most
    ``MAX_SCORES_PER_CALL / Ns`` so memory stays bounded either way. Args and returns as
    :func:`cosine_attention_stats_quadratic`.
    """
    c = value.shape[1]
    v = value.float()
    both = torch.cat([v, v * v], dim=1)  # (B, 2C, Ns)
    q, k = query.float(), key.float()
    width = max(q.shape[1], both.shape[1])
    q, k = (F.pad(t, (0, 0, 0, width - t.shape[1])) for t in (q, k))
    both = F.pad(both, (0, 0, 0, width - both.shape[1]))
    q, k, both = (t.transpose(1, 2).unsqueeze(1).contiguous() for t in (q, k, both))
    block = max(1, MAX_SCORES_PER_CALL // (k.shape[0] * k.shape[2]))
    out = torch.cat(
        [
            F.scaled_dot_product_attention(q_block, k, both, scale=1.0)
            for q_block in q.split(block, dim=2)
        ],
        dim=2,
    ).squeeze(1)  # (B, Nc, width)
    mean, second = out[..., :c], out[..., c : 2 * c]
    std = torch.relu(second - mean * mean).sqrt()
    return mean.transpose(1, 2).contiguous(), std.transpose(1, 2).contiguous()


def softmax_attention_stats_quadratic(
    query: Tensor, key: Tensor, value: Tensor
) -> tuple[Tensor, Tensor]:
    """Reference form of :func:`softmax_attention_stats` (explicit softmax over the score matrix)."""
    q = query.float().transpose(1, 2)
    attn = torch.softmax(torch.bmm(q, key.float()), dim=-1)
    v = value.float().transpose(1, 2)
    mean = torch.bmm(attn, v)
    std = torch.relu(torch.bmm(attn, v * v) - mean * mean).sqrt()
    return mean.transpose(1, 2), std.transpose(1, 2)


@dataclass(frozen=True)
class SoftmaxStyleState:
    """Projected style keys (S, d, Ns) and values (S, C, Ns), float32, reused for every frame."""

    key: Tensor
    value: Tensor


StyleState = CosineStyleSums | SoftmaxStyleState


def attention_stats(
    kind: AttentionKind, query: Tensor, key: Tensor, value: Tensor, *, quadratic: bool = False
) -> tuple[Tensor, Tensor]:
    """Mean and std (B, C, Nc) of ``value`` under attention ``kind``, for already projected
    query (B, d, Nc), key (B, d, Ns) and value (B, C, Ns). Parameter-free: the losses' AdaAttN*."""
    if kind == "cosine":
        if quadratic:
            return cosine_attention_stats_quadratic(query, key, value)
        return cosine_attention_stats(query, CosineStyleSums.from_style(key, value))
    if quadratic:
        return softmax_attention_stats_quadratic(query, key, value)
    return softmax_attention_stats(query, key, value)


def adaptive_attention_norm(
    kind: AttentionKind,
    content: Tensor,
    style: Tensor,
    content_key: Tensor,
    style_key: Tensor,
    *,
    quadratic: bool = False,
) -> Tensor:
    """Parameter-free AdaAttN* (SPEC section 5): keys used directly, no f/g/h.

    Args: content (B, C, H, W), style (B, C, Hs, Ws), content_key (B, d, H, W),
    style_key (B, d, Hs, Ws). Returns (B, C, H, W) float32 = std * norm(content) + mean.
    """
    b, c, h, w = content.shape
    mean, std = attention_stats(
        kind, content_key.flatten(2), style_key.flatten(2), style.flatten(2), quadratic=quadratic
    )
    return std.view(b, c, h, w) * mean_variance_norm(content.float()) + mean.view(b, c, h, w)


class AdaAttN(nn.Module):
    """Attention normalization with learned projections (SPEC section 3).

    ``f`` projects content keys, ``g`` style keys (both key_channels -> key_channels), ``h``
    style values (channels -> channels); 1x1 convolutions, named as in the published files.
    Always float32: see the module docstring.
    """

    def __init__(self, channels: int, key_channels: int, kind: AttentionKind = "cosine") -> None:
        super().__init__()
        if kind not in ("cosine", "softmax"):
            raise ValueError(f"kind must be 'cosine' or 'softmax', got {kind!r}")
        self.kind = kind
        self.f = nn.Conv2d(key_channels, key_channels, 1)
        self.g = nn.Conv2d(key_channels, key_channels, 1)
        self.h = nn.Conv2d(channels, channels, 1)

    def style_state(self, style: Tensor, style_key: Tensor) -> StyleState:
        """Everything about a style that frames reuse: style (S, C, Hs, Ws), key (S, d, Hs, Ws)."""
        with _no_autocast(style):
            key = self.g(style_key.float()).flatten(2)
            value = self.h(style.float()).flatten(2)
            if self.kind == "cosine":
                return CosineStyleSums.from_style(key, value)
            return SoftmaxStyleState(key, value)

    def forward(self, content: Tensor, content_key: Tensor, state: StyleState) -> Tensor:
        """content (B, C, H, W), content_key (B, d, H, W) -> (B, C, H, W) float32."""
        b, c, h, w = content.shape
        with _no_autocast(content):
            query = self.f(content_key.float()).flatten(2)
            if isinstance(state, CosineStyleSums):
                mean, std = cosine_attention_stats(query, state)
            else:
                key, value = state.key, state.value
                if key.shape[0] != b:
                    key, value = key.expand(b, -1, -1), value.expand(b, -1, -1)
                mean, std = softmax_attention_stats(query, key, value)
            return std.view(b, c, h, w) * mean_variance_norm(content.float()) + mean.view(
                b, c, h, w
            )

    def forward_quadratic(
        self, content: Tensor, style: Tensor, content_key: Tensor, style_key: Tensor
    ) -> Tensor:
        """The published formulation (full score matrix, style projected on every call); the
        reference the fast path is tested and benchmarked against."""
        b, c, h, w = content.shape
        with _no_autocast(content):
            query = self.f(content_key.float()).flatten(2)
            key = self.g(style_key.float()).flatten(2)
            value = self.h(style.float()).flatten(2)
            if key.shape[0] != b:
                key, value = key.expand(b, -1, -1), value.expand(b, -1, -1)
            mean, std = attention_stats(self.kind, query, key, value, quadratic=True)
            return std.view(b, c, h, w) * mean_variance_norm(content.float()) + mean.view(
                b, c, h, w
            )
