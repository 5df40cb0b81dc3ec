"""Attention normalization (AdaAttN, AdaAttN paper, section 3.2) with both attention kinds.

Shapes: keys are (B, d, N), values (B, C, N), with N = H * W positions; the per-frame paths
work position-major, (B, N, C), the memory order of channels-last feature maps.

Precision: statistics, the variance step and the output are float32 whatever the caller's
precision (``E[V^2] - M^2`` cancels badly in half). The cosine kind's two per-frame matmuls (key
projection, style sums) may run in bf16 where the convolutions do: the sums are stored with
centred values, so the variance step stays accurate (see :class:`CosineStyleSums`).

* Cosine (the cosine form of the published video model, the video default): scores ``relu(q.k + 1)`` are linear in k, so every
  style-side sum is computed once per style; that kind is in
  :mod:`adaattn_video.cosine_attention` (re-exported here).
* Softmax (the softmax form of the AdaAttN paper): exact, with ``[V, V^2]`` attended in one fused
  ``scaled_dot_product_attention`` call (no random subsampling of style positions).

The content/style keys and their projection are in :mod:`adaattn_video.attention_keys`; the quadratic
forms, the reference the fast paths are tested against, in :mod:`adaattn_video.attention_reference`.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from adaattn_video.attention_keys import KeyParts, position_stats, project_key
from adaattn_video.attention_reference import (
    cosine_attention_stats_quadratic,
    softmax_attention_stats_quadratic,
)
from adaattn_video.config import AttentionKind
from adaattn_video.cosine_attention import (
    BLOCK_POSITIONS,
    CosineStyleSums,
    block_positions,
    cosine_adaattn_blocked,
    cosine_attention_stats,
    cosine_stats_positions,
)
from adaattn_video.exact_fp32 import ieee_fp32
from adaattn_video.functional import mean_variance_norm, tracing
from adaattn_video.temporal_stats import filter_stats

# Re-exported: the cosine kind lives in adaattn_video.cosine_attention.
__all__ = [
    "BLOCK_POSITIONS",
    "AdaAttN",
    "CosineStyleSums",
    "SoftmaxStyleState",
    "StyleState",
    "adaptive_attention_norm",
    "attention_stats",
    "block_positions",
    "cosine_adaattn_blocked",
    "cosine_attention_stats",
    "cosine_stats_positions",
    "renormalize",
    "softmax_attention_stats",
]


def _no_autocast(x: Tensor) -> AbstractContextManager:
    """Turn off an enclosing ``torch.autocast`` (training with AMP): it would recast the matmuls
    below to half precision despite the ``.float()`` calls. Devices without autocast (``meta``:
    counting a frame's ops) have nothing to turn off."""
    if not torch.amp.is_autocast_available(x.device.type):
        return nullcontext()
    return torch.autocast(device_type=x.device.type, enabled=False)


@contextmanager
def _float32(x: Tensor, kind: AttentionKind) -> Iterator[None]:
    """:func:`_no_autocast`, and for softmax attention IEEE float32 on CUDA (no TF32 in the
    projections): its unscaled logits reach the hundreds, so TF32's 10-bit rounding of the
    keys would change which style position wins (see :mod:`adaattn_video.exact_fp32`)."""
    with _no_autocast(x), ieee_fp32(x.device) if kind == "softmax" else nullcontext():
        yield


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
    """Parameter-free AdaAttN* (AdaAttN paper, section 3.3): keys used directly, no f/g/h.

    Args: content (B, C, H, W), style (B, C, Hs, Ws), content_key (B, d, H, W),
    style_key (B, d, Hs, Ws). Returns (B, C, H, W) float32 = std * norm(content) + mean.
    """
    b, c, h, w = content.shape
    mean, std = attention_stats(
        kind, content_key.flatten(2), style_key.flatten(2), style.flatten(2), quadratic=quadratic
    )
    return std.view(b, c, h, w) * mean_variance_norm(content.float()) + mean.view(b, c, h, w)


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
    """Attention normalization with learned projections (AdaAttN paper, section 3.2).

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
        with _float32(style, self.kind):
            return self._state(style, self.g(style_key.float()).flatten(2))

    def style_state_from_taps(self, style: Tensor, key_taps: Sequence[Tensor]) -> StyleState:
        """As :meth:`style_state`, from the encoder taps relu1_1 .. relu_L (see
        :func:`project_key`); float32 whatever the taps' dtype (once per style)."""
        with _float32(style, self.kind):
            key = project_key(key_taps, self.g, torch.float32).transpose(1, 2)
            return self._state(style, key)

    def _state(self, style: Tensor, key: Tensor) -> StyleState:
        value = self.h(style.float()).flatten(2)
        if self.kind == "cosine":
            return CosineStyleSums.from_style(key, value)
        return SoftmaxStyleState(key.contiguous(), value)

    def forward(self, content: Tensor, content_key: Tensor, state: StyleState) -> Tensor:
        """content (B, C, H, W), content_key (B, d, H, W) -> (B, C, H, W) float32."""
        with _float32(content, self.kind):
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
        with _float32(content, self.kind):
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
        with _float32(content, self.kind):
            query = self.f(content_key.float()).flatten(2)
            key = self.g(style_key.float()).flatten(2)
            value = self.h(style.float()).flatten(2)
            if key.shape[0] != b:
                key, value = key.expand(b, -1, -1), value.expand(b, -1, -1)
            mean, std = attention_stats(self.kind, query, key, value, quadratic=True)
            return std.view(b, c, h, w) * mean_variance_norm(content.float()) + mean.view(
                b, c, h, w
            )
