"""One model call for a batch whose frames each have their own style mix and alpha.

``StyleTransferModel.stylize`` gives every frame of a batch the same styles. A stream server
(``stylestream serve``) batches the newest frame of several streams, each with its own style, so
it needs a style per frame. The video model's cosine attention makes that cheap: a style is a
few small sums (:class:`~adaattn_video.attention.CosineStyleSums`: a (d + 1, 1 + 2C) matrix,
the values' centre (1, C) and the position count), and the attention already accepts S = B
sums concatenated along dim 0 (sum ``b`` serves frame ``b``). So the encoder and decoder run once on the whole batch and only those sums differ.

Mixes: ``stylize`` mixes the attention OUTPUTS of several styles with weights
(``out = sum_k w_k AdaAttN(content, style_k)``; the output is not linear in the sums, so the
sums themselves cannot be mixed). Per frame, the k-th style of every frame forms "slot" k: one
attention call with S = B per slot, frames with fewer styles get weight 0 in the slots they do
not use. Alpha is ``alpha * attended + (1 - alpha) * content features`` before decoding, per
frame. Result: equal to stylizing each frame alone up to float rounding (tested).

Only the video model (cosine attention) is supported: the image model's softmax attention keeps
the full style keys/values (S, d, Ns), whose sizes differ between styles.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from adaattn_video.attention import CosineStyleSums
from adaattn_video.errors import StylestreamError
from adaattn_video.model import StyleFeatures, StyleTransferModel, VideoAdaAttN


class PerFrameStyleError(StylestreamError, ValueError):
    """The model or the per-frame styles cannot be batched."""


@dataclass(frozen=True)
class FrameStyle:
    """The style of one frame of a batch.

    Attributes:
        features: one :meth:`~StyleTransferModel.encode_style` result per style image (S = 1).
        weights: their mixing weights (sum 1), one per entry of ``features``.
        alpha: content strength in [0, 1] for this frame.
    """

    features: tuple[StyleFeatures, ...]
    weights: tuple[float, ...]
    alpha: float = 1.0

    def __post_init__(self) -> None:
        if not self.features or len(self.features) != len(self.weights):
            raise PerFrameStyleError(
                f"expected one weight per style (at least one style), got {len(self.features)} "
                f"style(s) and {len(self.weights)} weight(s)"
            )
        if not 0.0 <= self.alpha <= 1.0:
            raise PerFrameStyleError(f"alpha must be in [0, 1], got {self.alpha}")


def check_batchable(model: StyleTransferModel) -> None:
    """Raise :class:`PerFrameStyleError` unless ``model`` supports per-frame styles."""
    if not isinstance(model, VideoAdaAttN) or model.transformer.kind != "cosine":
        raise PerFrameStyleError(
            "per-frame styles in one batch need the video model with cosine attention; "
            f"got {type(model).__name__} ({model.config.attention} attention): use the video "
            "weights (stylestream weights download)"
        )


def _slot_sums(slot: Sequence[CosineStyleSums]) -> CosineStyleSums:
    """Frame b's sums at index b: (S=B, ...) concatenated, or S = 1 when all frames share one."""
    first = slot[0]
    if all(sums is first for sums in slot):
        return first  # one style for the whole batch: broadcast, no copy
    return CosineStyleSums(
        weight=torch.cat([s.weight for s in slot], dim=0),
        center=torch.cat([s.center for s in slot], dim=0),
        count=torch.cat([s.count for s in slot], dim=0),
    )


@torch.no_grad()
def stylize_per_frame(
    model: StyleTransferModel, content: Tensor, styles: Sequence[FrameStyle]
) -> Tensor:
    """Stylize frame ``b`` of ``content`` with ``styles[b]``, in one encoder/decoder pass.

    Args:
        model: a :class:`~adaattn_video.model.VideoAdaAttN` (cosine attention).
        content: (B, 3, H, W) in [0, 1]; H and W multiples of ``model.size_multiple``.
        styles: B :class:`FrameStyle` (frames may share the same object).

    Returns:
        (B, 3, H, W) in the model's compute dtype, not clamped; equal (up to rounding) to
        ``model.stylize(content[b:b+1], styles[b].features, styles[b].weights, styles[b].alpha)``.
    """
    check_batchable(model)
    assert isinstance(model, VideoAdaAttN)
    if content.ndim != 4 or content.shape[1] != 3:
        raise PerFrameStyleError(f"content must be (B, 3, H, W), got {tuple(content.shape)}")
    batch = content.shape[0]
    if len(styles) != batch:
        raise PerFrameStyleError(
            f"expected {batch} frame styles (one per frame), got {len(styles)}"
        )
    taps = model.encoder(model._encoder_input(content))
    slots = max(len(style.features) for style in styles)
    device = taps["relu3_1"].device
    mixed: Tensor | None = None
    for k in range(slots):
        # Frames with fewer than k + 1 styles reuse their first style at weight 0.
        sums = [style.features[k if k < len(style.features) else 0][0] for style in styles]
        if not all(isinstance(s, CosineStyleSums) for s in sums):
            raise PerFrameStyleError("per-frame styles need cosine style sums (video model)")
        weight = torch.tensor(
            [style.weights[k] if k < len(style.weights) else 0.0 for style in styles],
            dtype=torch.float32,
            device=device,
        ).view(batch, 1, 1, 1)
        (part,) = model._transform(taps, (_slot_sums(sums),))
        mixed = part * weight if mixed is None else mixed + part * weight
    assert mixed is not None
    alphas = [style.alpha for style in styles]
    if any(alpha != 1.0 for alpha in alphas):
        alpha = torch.tensor(alphas, dtype=torch.float32, device=device).view(batch, 1, 1, 1)
        mixed = alpha * mixed + (1.0 - alpha) * taps["relu3_1"].float()
    return model._decode(taps, [mixed], 1.0)
