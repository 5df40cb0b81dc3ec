"""Attention normalization (AdaAttN, SPEC section 3) with both attention kinds.

Shapes: keys are (B, d, N), values (B, C, N), with N = H * W positions; the per-frame paths
work position-major, (B, N, C), the memory order of channels-last feature maps.

Precision: statistics, the variance step and the output are float32 whatever the caller's
precision (``E[V^2] - M^2`` cancels badly in half). The cosine kind's two per-frame matmuls (key
projection, style sums) may run in bf16 where the convolutions do: the sums are stored with
centred values, so the variance step stays accurate (see :class:`CosineStyleSums`).

* Cosine (SPEC 3b, the video default): scores ``relu(q.k + 1)`` are linear in k, so every
  style-side sum is computed once per style (:class:`CosineStyleSums`) and a frame costs
  O(Nc * d * C) with no Nc x Ns matrix and no dependence on the style's size.
* Softmax (SPEC 3a): exact, with ``[V, V^2]`` attended in one fused
  ``scaled_dot_product_attention`` call (no random subsampling of style positions).

The content/style keys and their projection are in :mod:`adaattn_video.attention_keys`; the quadratic
forms, the reference the fast paths are tested against, in :mod:`adaattn_video.attention_reference`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from adaattn_video.attention_keys import (
    KeyParts,
    at_size,
    folded_projection,
    position_stats,
    project_key,
    unit_positions,
)
from adaattn_video.attention_reference import (
    cosine_attention_stats_quadratic,
    softmax_attention_stats_quadratic,
)
from adaattn_video.config import AttentionKind
from adaattn_video.functional import EPS, mean_variance_norm, tracing
from adaattn_video.temporal_stats import filter_stats


def _no_autocast(x: Tensor) -> torch.autocast:
    """Turn off an enclosing ``torch.autocast`` (training with AMP): it would recast the matmuls
    below to half precision despite the ``.float()`` calls."""
    return torch.autocast(device_type=x.device.type, enabled=False)


@dataclass(frozen=True)
class CosineStyleSums:
    """Per-style sums that make cosine attention linear (SPEC 3b).

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

    @property
    def p1(self) -> Tensor:
        """(S, d, C) mean_j k_j (V_j - c)^T."""
        return self.weight[:, :-1, 1 : 1 + self.channels]


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


# Most score-matrix elements one SDPA call may hold if it falls back to its math kernel
# (2**26 float32 = 256 MiB): queries are processed in blocks below that.
MAX_SCORES_PER_CALL = 2**26


def softmax_attention_stats(
    query: Tensor, key: Tensor, value: Tensor, log_weight: Tensor | None = None
) -> tuple[Tensor, Tensor]:
    """Exact softmax attention statistics (no 1/sqrt(d) scale), fused.

    ``[V, V^2]`` are attended together with ``scaled_dot_product_attention``, whose flash and
    memory-efficient kernels never hold the (Nc, Ns) matrix. Those kernels need contiguous inputs
    with one head size, so the narrower side is zero-padded (zeros change neither q.k nor the
    output columns kept). Where no fused kernel takes the shapes (head sizes above a GPU
    kernel's limit), SDPA computes the matrix: queries go in blocks of at most
    ``MAX_SCORES_PER_CALL / Ns`` so memory stays bounded either way. Args and returns as
    :func:`~adaattn_video.attention_reference.cosine_attention_stats_quadratic`; ``log_weight``
    (S, 1, Ns), S = 1 or B, is added to every score (``log m_j``, a soft style mask: regions),
    as the additive float ``attn_mask`` of the fused kernels.
    """
    c = value.shape[1]
    v = value.float()
    both = torch.cat([v, v * v], dim=1)  # (B, 2C, Ns)
    q, k = query.float(), key.float()
    width = max(q.shape[1], both.shape[1])
    q, k = (F.pad(t, (0, 0, 0, width - t.shape[1])) for t in (q, k))
    both = F.pad(both, (0, 0, 0, width - both.shape[1]))
    q, k, both = (t.transpose(1, 2).unsqueeze(1).contiguous() for t in (q, k, both))
    mask = None
    if log_weight is not None:
        mask = log_weight.float().unsqueeze(1)  # (S, 1, 1, Ns)
        if mask.shape[0] != k.shape[0]:
            mask = mask.expand(k.shape[0], -1, -1, -1)
    block = max(1, MAX_SCORES_PER_CALL // (k.shape[0] * k.shape[2]))
    out = torch.cat(
        [
            F.scaled_dot_product_attention(
                q_block,
                k,
                both,
                attn_mask=None if mask is None else mask.expand(-1, -1, q_block.shape[2], -1),
                scale=1.0,
            )
            for q_block in q.split(block, dim=2)
        ],
        dim=2,
    ).squeeze(1)  # (B, Nc, width)
    mean, second = out[..., :c], out[..., c : 2 * c]
    std = torch.relu(second - mean * mean).sqrt()
    return mean.transpose(1, 2).contiguous(), std.transpose(1, 2).contiguous()


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


# Positions per block of :func:`cosine_adaattn_blocked`: its float32 temporaries (about
# 4 KiB per position) stay in the cache instead of streaming through memory.
BLOCK_POSITIONS = 2048


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
    after a first pass for the per-channel statistics. At 720p the unblocked form moves
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
    step = max(1, BLOCK_POSITIONS // w)
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


def renormalize(
    content: Tensor,
    mean: Tensor,
    std: Tensor,
    known: tuple[Tensor, Tensor, Tensor] | None = None,
) -> Tensor:
    """``std * norm(content) + mean``, the AdaAttN output.

    Args:
        content: (B, C, H, W) features, any float dtype and layout.
        mean, std: (B, N, C) float32 attention statistics, N = H * W (position-major).
        known: content position-major in float32 (B, N, C), its mean and inv_std (B, C), when
            the caller has them already (:meth:`KeyParts.last`).

    Returns:
        (B, C, H, W) float32 in channels-last memory order (no copy for the position-major
        statistics; convolutions take either layout).
    """
    b, c, h, w = content.shape
    if known is None:
        x = content.permute(0, 2, 3, 1).reshape(b, h * w, c).float()
        mu, inv_std = position_stats(x)
    else:
        x, mu, inv_std = known
    inv_std = inv_std.unsqueeze(1)
    shift = -mu.unsqueeze(1) * inv_std
    normed = torch.addcmul(shift, x, inv_std)  # (x - mu) / sigma, a new tensor
    if torch.is_grad_enabled():
        out = torch.addcmul(mean, std, normed)
    else:
        out = torch.addcmul(mean, normed, std, out=normed)
    return out.view(b, h, w, c).permute(0, 3, 1, 2)


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
        """Everything about a style that frames reuse: style (S, C, Hs, Ws), key (S, d, Hs, Ws)
        (the normalised "shallow + deep" key, as :func:`~adaattn_video.functional.attention_key`
        builds it)."""
        with _no_autocast(style):
            return self._state(style, self.g(style_key.float()).flatten(2))

    def style_state_from_taps(self, style: Tensor, key_taps: Sequence[Tensor]) -> StyleState:
        """As :meth:`style_state`, from the encoder taps relu1_1 .. relu_L (see
        :func:`project_key`); float32 whatever the taps' dtype (once per style)."""
        with _no_autocast(style):
            key = project_key(key_taps, self.g, torch.float32).transpose(1, 2)
            return self._state(style, key)

    def _state(self, style: Tensor, key: Tensor) -> StyleState:
        value = self.h(style.float()).flatten(2)
        if self.kind == "cosine":
            return CosineStyleSums.from_style(key, value)
        return SoftmaxStyleState(key.contiguous(), value)

    def forward(self, content: Tensor, content_key: Tensor, state: StyleState) -> Tensor:
        """content (B, C, H, W), content_key (B, d, H, W) -> (B, C, H, W) float32."""
        with _no_autocast(content):
            query = self.f(content_key.float()).flatten(2).transpose(1, 2)
            return self._attend(content, query, state, torch.float32)

    def forward_taps(
        self,
        content: Tensor,
        key_taps: Sequence[Tensor],
        state: StyleState,
        dtype: torch.dtype = torch.float32,
        *,
        out_dtype: torch.dtype = torch.float32,
    ) -> Tensor:
        """The per-frame path: as :meth:`forward` with the key built from the encoder taps
        relu1_1 .. relu_L (:func:`project_key`). ``dtype`` is the precision of the two matmuls
        of the cosine kind (statistics and the variance step stay float32); softmax attention
        is always float32. Returns (B, C, H, W) (channels-last memory order), float32 or, at
        inference, ``out_dtype`` where the blocked cosine path can write it directly."""
        with _no_autocast(content):
            if (
                isinstance(state, CosineStyleSums)
                and content is key_taps[-1]
                and not torch.is_grad_enabled()
                and not tracing()
            ):
                return cosine_adaattn_blocked(content, key_taps, self.f, state, dtype, out_dtype)
            parts = KeyParts.from_taps(key_taps)
            kind_dtype = dtype if self.kind == "cosine" else torch.float32
            query = project_key(key_taps, self.f, kind_dtype, parts)
            # The content is the deepest key tap: its float32 copy and statistics are there.
            known = parts.last(content.shape[1]) if content is key_taps[-1] else None
            return self._attend(content, query, state, dtype, known)

    def _attend(
        self,
        content: Tensor,
        query: Tensor,
        state: StyleState,
        dtype: torch.dtype,
        known: tuple[Tensor, Tensor, Tensor] | None = None,
    ) -> Tensor:
        """content (B, C, H, W), query (B, N, d) projected -> (B, C, H, W) float32."""
        if isinstance(state, CosineStyleSums):
            mean, std = cosine_stats_positions(query, state, dtype)
        else:
            b = content.shape[0]
            key, value = state.key, state.value
            if key.shape[0] != b:
                key, value = key.expand(b, -1, -1), value.expand(b, -1, -1)
            mean, std = softmax_attention_stats(query.float().transpose(1, 2), key, value)
            mean, std = mean.transpose(1, 2), std.transpose(1, 2)
        h, w = content.shape[-2:]
        mean, std = filter_stats(mean, std, (0, h), (h, w))  # temporal smoothing hook (no-op)
        return renormalize(content, mean, std, known)

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
