"""Spatial control: different styles for different regions of a frame (masked AdaAttN).

Regions ``r = 1..R`` each have a content mask ``w_r`` (soft, in [0, 1], one value per content
position) and a style (an image, optionally with a style mask ``m_r`` that selects part of it).
A content position attends only to the style positions of its region:

* cosine (video model), linear time: the scores ``relu(q.k_j + 1)`` are linear in ``k_j``, so the
  region's attention is the style sums of :class:`~adaattn_video.attention.CosineStyleSums` with
  every style position weighted by ``m_j`` (values centred on their m-weighted mean c, sums
  divided by ``n = sum_j m_j``): ``sum_j m_j [1, V_j - c, (V_j - c)^2] / n`` and
  ``sum_j m_j k_j [1, V_j - c, (V_j - c)^2]^T / n``. The same
  :func:`~adaattn_video.attention.cosine_stats_positions` evaluates them (bf16 where the
  convolutions run in bf16). No Nc x Ns matrix; the cost per frame does not depend on the masks.
* softmax (image model), exact and fused: ``softmax_j(q.k_j + log m_j)``, i.e. ``m_j exp(q.k_j)``
  normalised. Style positions with ``m_j = 0`` are dropped (gathered out) once per style; a soft
  rest enters ``scaled_dot_product_attention`` as an additive float mask, in bounded query blocks.

Per content position the region results are blended: ``mean = sum_r W_r mean_r`` and
``std = sum_r W_r std_r`` (blending the statistics is exactly blending the AdaAttN outputs
``std * norm(content) + mean``, so soft masks feather edges). Positions covered by no mask (the
weight ``1 - sum_r w_r``) get the default of :data:`Uncovered`:

* ``"style"`` (the default): the unmasked default style (the command's global style, or the
  first region's whole style image);
* ``"content"``: the content itself (the decoder input is ``a * stylized + (1 - a) * content``
  with ``a = min(1, sum_r w_r)`` per position, like a per-position ``alpha``).

Where masks overlap (``sum_r w_r > 1``) the weights are divided by their sum.

Masks reach the attention levels by area averaging (a level cell's weight is the mean of the
mask over the frame pixels it covers), so a cell fully inside a hard mask has weight exactly 1.

The quadratic references (tests only) are in :mod:`adaattn_video.masked_attention_reference`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor

from adaattn_video.attention import (
    AdaAttN,
    CosineStyleSums,
    SoftmaxStyleState,
    StyleState,
    _no_autocast,
    cosine_stats_positions,
    renormalize,
    softmax_attention_stats,
)
from adaattn_video.attention_keys import KeyParts, project_key
from adaattn_video.errors import StylestreamError
from adaattn_video.functional import EPS
from adaattn_video.model import (
    ImageAdaAttN,
    StyleFeatures,
    StyleTransferModel,
    VideoAdaAttN,
    _check_images,
    _key_taps,
)

Uncovered = Literal["style", "content"]
UNCOVERED: tuple[str, ...] = ("style", "content")


class RegionError(StylestreamError, ValueError):
    """Regions that cannot be used: an empty mask, a region without a style, mismatched sizes."""


@dataclass(frozen=True)
class MaskedSoftmaxState:
    """Softmax style state restricted by a soft style mask.

    Attributes:
        key: (S, d, Ns') projected style keys of the positions with mask > 0.
        value: (S, C, Ns') their values.
        log_weight: (S, 1, Ns') ``log m_j`` of those positions, added to the scores.
    """

    key: Tensor
    value: Tensor
    log_weight: Tensor


RegionState = StyleState | MaskedSoftmaxState


# -- style side -------------------------------------------------------------------------------
def masked_cosine_sums(key: Tensor, value: Tensor, weight: Tensor | None) -> CosineStyleSums:
    """Cosine style sums with every style position weighted by its style-mask value.

    Args:
        key: (S, d, Ns) projected style keys; value: (S, C, Ns); weight: (S, 1, Ns) in [0, 1]
            with some weight > 0, or None (= all ones, the unmasked sums).
    """
    return CosineStyleSums.from_style(key, value, weight)


def masked_softmax_state(
    key: Tensor, value: Tensor, weight: Tensor | None
) -> SoftmaxStyleState | MaskedSoftmaxState:
    """Softmax style state of the positions with ``weight > 0`` (gathered: cheaper attention);
    a plain :class:`SoftmaxStyleState` when every kept weight is 1 (a hard mask at this level).
    key (1, d, Ns), value (1, C, Ns), weight (1, 1, Ns) or None."""
    key, value = key.float(), value.float()
    if weight is None:
        return SoftmaxStyleState(key, value)
    if weight.shape[0] != 1:
        raise ValueError(f"one style image per region, got a batch of {weight.shape[0]}")
    keep = weight[0, 0] > 0
    key, value, kept = key[..., keep], value[..., keep], weight.float()[..., keep]
    if bool((kept == 1).all()):
        return SoftmaxStyleState(key.contiguous(), value.contiguous())
    return MaskedSoftmaxState(key.contiguous(), value.contiguous(), kept.log().contiguous())


def masked_style_state(kind: str, key: Tensor, value: Tensor, weight: Tensor | None) -> RegionState:
    """The style state of one level for attention ``kind`` restricted by ``weight`` (1, 1, Ns)."""
    if kind == "cosine":
        return masked_cosine_sums(key, value, weight)
    return masked_softmax_state(key, value, weight)


def resize_mask(mask: Tensor, size: tuple[int, int]) -> Tensor:
    """(B, K, H, W) masks -> (B, K, h, w) by area averaging (exact 1 inside a hard mask)."""
    if tuple(mask.shape[-2:]) == tuple(size):
        return mask.float()
    return F.interpolate(mask.float(), size=size, mode="area")


@torch.no_grad()
def encode_masked_style(
    model: StyleTransferModel, style: Tensor, style_mask: Tensor | None = None
) -> StyleFeatures:
    """Like :meth:`StyleTransferModel.encode_style`, restricted to the style positions of
    ``style_mask``.

    Args:
        style: (1, 3, Hs, Ws) in [0, 1], sides multiples of the model's size multiple.
        style_mask: (1, 1, Hs, Ws) in [0, 1] (white = use), or None for the whole image.

    Raises:
        RegionError: the mask selects nothing at some attention level.
    """
    _check_images(style, "style")
    if style_mask is not None and (
        style_mask.ndim != 4 or style_mask.shape[:2] != (1, 1)
        or style_mask.shape[-2:] != style.shape[-2:]
    ):  # fmt: skip
        raise ValueError(
            f"style_mask must be (1, 1, {style.shape[-2]}, {style.shape[-1]}), "
            f"got {tuple(style_mask.shape)}"
        )
    taps = model.encoder(model._encoder_input(style))
    states = []
    for level, attn in model.attention_levels().items():
        weight = None
        if style_mask is not None:
            weight = resize_mask(style_mask, tuple(taps[level].shape[-2:])).flatten(2)
            if not bool((weight > 0).any()):
                raise RegionError(
                    f"the style mask selects no part of the style at {level} "
                    f"({taps[level].shape[-1]}x{taps[level].shape[-2]}); give a mask with more "
                    "white (at least a few pixels per 16x16 block)"
                )
        with _no_autocast(style):  # float32, as StyleTransferModel.encode_style
            key = project_key(_key_taps(taps, level), attn.g, torch.float32).transpose(1, 2)
            value = attn.h(taps[level].float()).flatten(2)
            states.append(masked_style_state(attn.kind, key, value, weight))
    return tuple(states)


# -- content side -----------------------------------------------------------------------------
def masked_softmax_attention_stats(
    query: Tensor, state: SoftmaxStyleState | MaskedSoftmaxState
) -> tuple[Tensor, Tensor]:
    """Exact softmax attention mean/std (B, C, Nc) with the style restricted by ``state``.

    Both go to the fused :func:`~adaattn_video.attention.softmax_attention_stats`: a
    :class:`SoftmaxStyleState` (whole style or a hard mask, gathered) as it is, a soft mask as
    its ``log m_j`` added to the scores (an additive float ``attn_mask``, no Nc x Ns matrix in the
    fused kernels).
    """
    b = query.shape[0]
    key, value = state.key, state.value
    if key.shape[0] != b:
        key, value = key.expand(b, -1, -1), value.expand(b, -1, -1)
    if isinstance(state, SoftmaxStyleState):
        return softmax_attention_stats(query, key, value)
    return softmax_attention_stats(query, key, value, state.log_weight)


def blend_weights(masks: Tensor, uncovered: Uncovered = "style") -> tuple[Tensor, Tensor]:
    """Per-position weights of [default, region 1, ..., region R] and the stylized coverage.

    Args:
        masks: (B, R, h, w) content masks in [0, 1] at one level.
        uncovered: what positions covered by no mask get (see the module docstring).

    Returns:
        weights (B, 1 + R, h, w) summing to 1 at every position, and coverage (B, 1, h, w) =
        ``min(1, sum_r w_r)`` (the per-position alpha of ``uncovered="content"``).
    """
    if uncovered not in UNCOVERED:
        raise ValueError(f"uncovered must be one of {UNCOVERED}, got {uncovered!r}")
    masks = masks.float().clamp(0.0, 1.0)
    total = masks.sum(dim=1, keepdim=True)
    if uncovered == "style":
        regions = masks / total.clamp(min=1.0)
    else:  # the regions share the stylized part; the content fills the rest (decoder side)
        regions = torch.where(total > 0, masks / total.clamp(min=EPS), torch.zeros_like(masks))
    default = (1.0 - regions.sum(dim=1, keepdim=True)).clamp(min=0.0)
    return torch.cat([default, regions], dim=1), total.clamp(max=1.0)


def region_attention_stats(
    query: Tensor, states: Sequence[RegionState], weights: Tensor
) -> tuple[Tensor, Tensor]:
    """Blended masked attention statistics, float32 (channel-major form of
    :func:`region_stats_positions`).

    Args:
        query: (B, d, Nc) projected content keys.
        states: K style states (masked or not).
        weights: (B, K, Nc) blend weights (each position's sum is 1).

    Returns:
        mean, std: (B, C, Nc) float32 = sum_k weights_k * stats_k.
    """
    mean, std = region_stats_positions(query.transpose(1, 2), states, weights)
    return mean.transpose(1, 2), std.transpose(1, 2)


def region_stats_positions(
    query: Tensor,
    states: Sequence[RegionState],
    weights: Tensor,
    dtype: torch.dtype = torch.float32,
) -> tuple[Tensor, Tensor]:
    """Blended masked attention statistics, position-major.

    Args:
        query: (B, N, d) projected content keys (not normalised).
        states: K style states (masked or not).
        weights: (B, K, N) blend weights (each position's sum is 1).
        dtype: precision of the cosine kind's matmul (see
            :func:`~adaattn_video.attention.cosine_stats_positions`); softmax is float32.

    Returns:
        mean, std: (B, N, C) float32 = sum_k weights_k * stats_k. A state is evaluated only at
        the positions where some frame of the batch gives it weight (those rows gathered once,
        contiguous), so regions cost little more than one unmasked frame, and nothing for a
        region absent from the batch.
    """
    if weights.shape[1] != len(states):
        raise ValueError(f"expected {len(states)} weight maps, got {weights.shape[1]}")
    b, n = query.shape[:2]
    mean = std = None
    for state, weight in zip(states, weights.float().unbind(1), strict=True):
        used = (weight > 0).any(dim=0)  # (N,)
        if not bool(used.any()):
            continue
        rows = None if bool(used.all()) else used.nonzero().squeeze(1)
        q, w = (query, weight) if rows is None else (query[:, rows], weight[:, rows])
        if isinstance(state, CosineStyleSums):
            m, s = cosine_stats_positions(q, state, dtype)
        else:
            m, s = masked_softmax_attention_stats(q.transpose(1, 2), state)
            m, s = m.transpose(1, 2), s.transpose(1, 2)
        if mean is None or std is None:
            mean = torch.zeros((b, n, m.shape[-1]), dtype=torch.float32, device=query.device)
            std = torch.zeros_like(mean)
        w = w.unsqueeze(-1)
        if rows is None:
            mean.addcmul_(w, m)
            std.addcmul_(w, s)
        else:
            mean[:, rows] += w * m
            std[:, rows] += w * s
    if mean is None or std is None:
        raise RegionError("every blend weight is zero: nothing to stylize with")
    return mean, std


def region_adaattn(
    attn: AdaAttN,
    content: Tensor,
    key_taps: Sequence[Tensor],
    states: Sequence[RegionState],
    weights: Tensor,
    dtype: torch.dtype = torch.float32,
) -> Tensor:
    """One AdaAttN level with regions, as :meth:`AdaAttN.forward_taps` with masked states.

    Args:
        content: (B, C, h, w), the last of ``key_taps`` (relu1_1 .. relu_L).
        weights: (B, K, h, w) blend weights of the K ``states``.
        dtype: precision of the cosine kind's matmuls (the model's ``attention_dtype``).

    Returns:
        (B, C, h, w) float32 = std * norm(content) + mean (channels-last memory order).
    """
    with _no_autocast(content):
        parts = KeyParts.from_taps(key_taps)
        dtype = dtype if attn.kind == "cosine" else torch.float32
        query = project_key(key_taps, attn.f, dtype, parts)  # (B, N, d)
        mean, std = region_stats_positions(query, states, weights.flatten(2), dtype)
        return renormalize(content, mean, std, parts.last(content.shape[1]))


def _content_features(model: StyleTransferModel, taps: dict[str, Tensor]) -> list[Tensor]:
    """The decoder inputs that decode the content itself (what ``alpha = 0`` decodes)."""
    if isinstance(model, VideoAdaAttN):
        return [taps["relu3_1"].float()]
    if isinstance(model, ImageAdaAttN):
        return [taps["relu4_1"], taps["relu3_1"].float()]
    raise TypeError(f"regions need a VideoAdaAttN or ImageAdaAttN, got {type(model).__name__}")


@torch.no_grad()
def stylize_regions(
    model: StyleTransferModel,
    content: Tensor,
    default: Sequence[StyleFeatures],
    default_weights: Sequence[float],
    regions: Sequence[StyleFeatures],
    masks: Tensor,
    *,
    uncovered: Uncovered = "style",
    alpha: float = 1.0,
) -> Tensor:
    """Encoder -> per-level region attention -> decoder, reusing ``model``'s parts.

    Args:
        content: (B, 3, H, W) in [0, 1], sides multiples of ``model.size_multiple``.
        default: the default style (one or a weighted mix, ``default_weights`` summing to 1),
            used where the masks leave weight over (``uncovered="style"``); with
            ``"content"`` it only fills positions the decoder then takes from the content.
        regions: R style features (from :func:`encode_masked_style` or ``encode_style``).
        masks: (B, R, H, W) content masks in [0, 1] at the content's size.
        alpha: content strength as in :meth:`StyleTransferModel.stylize`.

    Returns:
        (B, 3, H, W) in the model's compute dtype, not clamped. The encoder, its keys and the
        content normalisation never depend on the masks: with hard masks, a pixel of region r
        farther from the mask edges than the decoder's receptive field equals stylizing the
        whole frame with region r's style alone.
    """
    _check_images(content, "content")
    if masks.ndim != 4 or masks.shape[0] != content.shape[0] or masks.shape[1] != len(regions):
        raise ValueError(
            f"masks must be (B={content.shape[0]}, R={len(regions)}, H, W), "
            f"got {tuple(masks.shape)}"
        )
    if masks.shape[-2:] != content.shape[-2:]:
        raise ValueError(
            f"masks {tuple(masks.shape[-2:])} must have the content's size {tuple(content.shape[-2:])}"
        )
    if len(default) != len(default_weights) or not default:
        raise ValueError("expected one weight per default style, and at least one style")
    taps = model.encoder(model._encoder_input(content))
    outs = []
    for index, (level, attn) in enumerate(model.attention_levels().items()):
        level_masks = resize_mask(masks, tuple(taps[level].shape[-2:]))
        weights, _ = blend_weights(level_masks, uncovered)
        base, region_weights = weights[:, :1], weights[:, 1:]
        states = [style[index] for style in default] + [style[index] for style in regions]
        mixed = torch.cat([base * float(w) for w in default_weights] + [region_weights], dim=1)
        key_taps = _key_taps(taps, level)
        outs.append(
            region_adaattn(attn, taps[level], key_taps, states, mixed, model.attention_dtype)
        )
    features = model._combine(outs)
    if uncovered == "style":
        return model._decode(taps, features, alpha)
    blended = []
    for stylized, plain in zip(features, _content_features(model, taps), strict=True):
        _, coverage = blend_weights(resize_mask(masks, tuple(stylized.shape[-2:])), uncovered)
        a = coverage * alpha
        blended.append(a * stylized.float() + (1.0 - a) * plain.float())
    return model._decode(taps, blended, 1.0)
