"""The two published AdaAttN models (the published AdaAttN repository's networks) behind one interface.

A model turns content images and a precomputed style into stylized images:

    state = model.encode_style(style)          # once per style image
    out = model.stylize(content, [state])      # every frame; (B, 3, H, W) in, same out

Submodule names are chosen so that the published state dicts load under a fixed prefix
(``encoder.``, ``transformer.``, ``decoder.``, ``adaattn_3.``), see :mod:`adaattn_video.weights`.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from adaattn_video.attention import AdaAttN, StyleState
from adaattn_video.config import TAPS, ModelConfig
from adaattn_video.decoder import ImageDecoder, video_decoder
from adaattn_video.encoder import VGGEncoder
from adaattn_video.exact_fp32 import ieee_fp32
from adaattn_video.functional import ReflectionPad1, attention_key

# One entry per attention level: the states of one style image.
StyleFeatures = tuple[StyleState, ...]


def _keys(taps: dict[str, Tensor], level: str) -> Tensor:
    """The normalised key at ``level`` (the published formulation builds it explicitly)."""
    return attention_key(_key_taps(taps, level))


def _key_taps(taps: dict[str, Tensor], level: str) -> list[Tensor]:
    """The taps relu1_1 .. ``level`` that make the attention key at ``level``."""
    return [taps[name] for name in TAPS[: TAPS.index(level) + 1]]


def _mix(parts: Sequence[Tensor], weights: Sequence[float]) -> Tensor:
    if len(parts) == 1 and weights[0] == 1.0:
        return parts[0]  # one style: no pass over the features
    out = parts[0] * weights[0]
    for part, weight in zip(parts[1:], weights[1:], strict=True):
        out = out + part * weight
    return out


def _check_images(images: Tensor, name: str) -> None:
    if images.ndim != 4 or images.shape[1] != 3:
        raise ValueError(f"{name} must be (B, 3, H, W), got {tuple(images.shape)}")


class StyleTransferModel(nn.Module):
    """Common interface of :class:`VideoAdaAttN` and :class:`ImageAdaAttN`.

    The encoder and decoder run in ``compute_dtype`` (see :meth:`set_compute_dtype`); keys and
    attention always run in float32.
    """

    config: ModelConfig
    encoder: VGGEncoder

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        self.compute_dtype = torch.float32
        self.encoder_dtype = torch.float32
        self.memory_format = torch.contiguous_format

    @property
    def size_multiple(self) -> int:
        return self.config.size_multiple

    @property
    def min_side(self) -> int:
        """Smallest input side: the deepest tap must be at least 2x2 (reflection pad, variance)."""
        return 2 * self.size_multiple

    def set_compute_dtype(
        self, dtype: torch.dtype, *, channels_last: bool = False
    ) -> StyleTransferModel:
        """Run encoder and decoder in ``dtype`` (float32, float16 or bfloat16), optionally in
        channels-last memory layout (faster convolutions on CPUs with oneDNN and on tensor
        cores; the numbers are the same up to float rounding)."""
        if dtype not in (torch.float32, torch.float16, torch.bfloat16):
            raise ValueError(f"dtype must be float32, float16 or bfloat16, got {dtype}")
        self.compute_dtype = dtype
        self.encoder_dtype = self._encoder_dtype(dtype)
        self.memory_format = torch.channels_last if channels_last else torch.contiguous_format
        for part in self._conv_parts():
            part_dtype = self.encoder_dtype if part is self.encoder else dtype
            part.to(dtype=part_dtype, memory_format=self.memory_format)
        return self

    def _encoder_dtype(self, dtype: torch.dtype) -> torch.dtype:
        """The encoder's precision for compute dtype ``dtype`` (the same, unless a model's
        attention needs float32 features: see :class:`ImageAdaAttN`)."""
        return dtype

    def _conv_parts(self) -> list[nn.Module]:
        return [self.encoder, self.decoder]

    def _input(self, images: Tensor) -> Tensor:
        """Images or features (B, C, H, W) in the compute dtype and memory layout."""
        return images.to(dtype=self.compute_dtype, memory_format=self.memory_format)

    def _encoder_input(self, images: Tensor) -> Tensor:
        """Images (B, 3, H, W) in the encoder's dtype and the memory layout."""
        return images.to(dtype=self.encoder_dtype, memory_format=self.memory_format)

    def encode_style(self, style: Tensor) -> StyleFeatures:
        """Precompute what every frame reuses. style: (S, 3, Hs, Ws) in [0, 1]; usually S = 1."""
        _check_images(style, "style")
        taps = self.encoder(self._encoder_input(style))
        return tuple(
            attn.style_state_from_taps(taps[level], _key_taps(taps, level))
            for level, attn in self.attention_levels().items()
        )

    @torch.no_grad()
    def stylize(
        self,
        content: Tensor,
        styles: Sequence[StyleFeatures],
        weights: Sequence[float] | None = None,
        alpha: float = 1.0,
    ) -> Tensor:
        """Stylize a batch.

        Args:
            content: (B, 3, H, W) in [0, 1]; H and W multiples of :attr:`size_multiple`.
            styles: one or more :meth:`encode_style` results; their outputs are mixed with
                ``weights`` (which must sum to 1) before decoding.
            alpha: content strength; 1 = fully stylized, 0 = the decoded content features.

        Returns:
            (B, 3, H, W) in ``compute_dtype``, not clamped.
        """
        _check_images(content, "content")
        if not styles:
            raise ValueError("at least one style is needed")
        weights = [1.0 / len(styles)] * len(styles) if weights is None else list(weights)
        taps = self.encoder(self._encoder_input(content))
        # One style at full strength: the attention output goes straight to the decoder, so it
        # may be written in the decoder's dtype (saves a float32 pass; mixes stay float32).
        direct = len(styles) == 1 and alpha == 1.0
        out_dtype = self.compute_dtype if direct else torch.float32
        per_style = [self._transform(taps, state, out_dtype) for state in styles]
        mixed = [_mix(parts, weights) for parts in zip(*per_style, strict=True)]
        return self._decode(taps, mixed, alpha)

    def forward(self, content: Tensor, style: Tensor, alpha: float = 1.0) -> Tensor:
        """Convenience (and training) path: encode the style and stylize, with gradients."""
        taps = self.encoder(self._encoder_input(content))
        return self._decode(taps, list(self._transform(taps, self.encode_style(style))), alpha)

    @torch.no_grad()
    def forward_reference(self, content: Tensor, style: Tensor) -> Tensor:
        """The published formulation: quadratic attention, style encoded on every call."""
        c_taps = self.encoder(self._encoder_input(content))
        s_taps = self.encoder(self._encoder_input(style))
        outs = [
            attn.forward_quadratic(
                c_taps[level], s_taps[level], _keys(c_taps, level), _keys(s_taps, level)
            )
            for level, attn in self.attention_levels().items()
        ]
        return self._decode(c_taps, self._combine(outs), 1.0)

    # -- per-variant parts ------------------------------------------------------------------
    def attention_levels(self) -> dict[str, AdaAttN]:
        raise NotImplementedError

    @property
    def attention_dtype(self) -> torch.dtype:
        """Precision of the cosine attention's two matmuls (key projection, style sums):
        bfloat16 when the convolutions run in bf16 (the CPU default), else float32. Statistics
        and the variance step are float32 always (see :class:`CosineStyleSums`)."""
        return torch.bfloat16 if self.compute_dtype == torch.bfloat16 else torch.float32

    def _transform(
        self,
        taps: dict[str, Tensor],
        state: StyleFeatures,
        out_dtype: torch.dtype = torch.float32,
    ) -> list[Tensor]:
        dtype = self.attention_dtype
        outs = [
            attn.forward_taps(
                taps[level], _key_taps(taps, level), level_state, dtype, out_dtype=out_dtype
            )
            for (level, attn), level_state in zip(
                self.attention_levels().items(), state, strict=True
            )
        ]
        return self._combine(outs)

    def _combine(self, outs: list[Tensor]) -> list[Tensor]:
        """Attention outputs (one per level) -> the decoder's inputs."""
        raise NotImplementedError

    def _decode(self, taps: dict[str, Tensor], features: list[Tensor], alpha: float) -> Tensor:
        raise NotImplementedError


class VideoAdaAttN(StyleTransferModel):
    """The published video model: normalised VGG to relu3_1, one AdaAttN at relu3_1 (keys 448,
    values 256), and a decoder from 1/4 scale. Cosine attention by default (linear time)."""

    def __init__(self, config: ModelConfig | None = None) -> None:
        config = config or ModelConfig()
        if config.variant != "video":
            raise ValueError(f"VideoAdaAttN needs variant 'video', got {config.variant!r}")
        super().__init__(config)
        self.encoder = VGGEncoder(config.encoder_family, deepest="relu3_1")
        self.transformer = AdaAttN(256, 448, config.attention)
        self.decoder = video_decoder()

    def attention_levels(self) -> dict[str, AdaAttN]:
        return {"relu3_1": self.transformer}

    def _combine(self, outs: list[Tensor]) -> list[Tensor]:
        return outs

    def _decode(self, taps: dict[str, Tensor], features: list[Tensor], alpha: float) -> Tensor:
        (stylized,) = features
        if alpha != 1.0:
            stylized = alpha * stylized + (1.0 - alpha) * taps["relu3_1"].float()
        return self.decoder(self._input(stylized))


class Transformer(nn.Module):
    """The image model's relu4_1 + relu5_1 attention pair and merge conv (published key names)."""

    def __init__(self, kind: str) -> None:
        super().__init__()
        self.attn_adain_4_1 = AdaAttN(512, 960, kind)  # type: ignore[arg-type]
        self.attn_adain_5_1 = AdaAttN(512, 1472, kind)  # type: ignore[arg-type]
        self.merge_conv_pad = ReflectionPad1()
        self.merge_conv = nn.Conv2d(512, 512, 3)

    def merge(self, out4_1: Tensor, out5_1: Tensor) -> Tensor:
        up = nn.functional.interpolate(out5_1, scale_factor=2, mode="nearest")
        return self.merge_conv(self.merge_conv_pad(out4_1 + up))


class IeeeFp32Encoder(VGGEncoder):
    """A :class:`VGGEncoder` whose float32 convolutions are IEEE on CUDA, not TF32 (the image
    model's softmax flips on that rounding: :func:`~adaattn_video.exact_fp32.ieee_fp32`). Same
    modules and state dict."""

    def forward(self, images: Tensor) -> dict[str, Tensor]:  # type: ignore[override]
        with ieee_fp32(images.device):
            return super().forward(images)


class ImageAdaAttN(StyleTransferModel):
    """The published image model: normalised VGG to relu5_1, softmax AdaAttN at relu3_1 (a skip
    into the decoder), relu4_1 and relu5_1 (merged), decoder from 1/8 scale. Sides must be
    multiples of 16."""

    def __init__(self, config: ModelConfig | None = None) -> None:
        config = config or ModelConfig(variant="image", attention="softmax")
        if config.variant != "image":
            raise ValueError(f"ImageAdaAttN needs variant 'image', got {config.variant!r}")
        super().__init__(config)
        exact = config.attention == "softmax"  # see _encoder_dtype
        encoder = IeeeFp32Encoder if exact else VGGEncoder
        self.encoder = encoder(config.encoder_family, deepest="relu5_1")
        self.adaattn_3 = AdaAttN(256, 448, config.attention)
        self.transformer = Transformer(config.attention)
        self.decoder = ImageDecoder()

    def _conv_parts(self) -> list[nn.Module]:
        return [self.encoder, self.decoder, self.transformer.merge_conv]

    def _encoder_dtype(self, dtype: torch.dtype) -> torch.dtype:
        """Float32 for softmax attention whatever ``dtype``. Its logits ``q.k`` are not scaled
        (|q.k| reaches the hundreds), so the softmax is nearly one-hot and the bf16 rounding of
        the encoder's features (7 mantissa bits) changes WHICH style position wins: measured
        on the bundled photos, bf16 features gave 21 dB PSNR against float32 (max 219/255),
        float32 features with a bf16 decoder stay above 40 dB. On CUDA "float32" convolutions
        are TF32 by default, which rounds as badly: the encoder and the softmax attention's
        projections run in IEEE float32 there (:class:`IeeeFp32Encoder`). The decoder, the merge conv and
        everything after the attention still run in ``dtype``."""
        return torch.float32 if self.config.attention == "softmax" else dtype

    def attention_levels(self) -> dict[str, AdaAttN]:
        return {
            "relu3_1": self.adaattn_3,
            "relu4_1": self.transformer.attn_adain_4_1,
            "relu5_1": self.transformer.attn_adain_5_1,
        }

    def _combine(self, outs: list[Tensor]) -> list[Tensor]:
        skip, out4_1, out5_1 = outs
        merged = self.transformer.merge(self._input(out4_1), self._input(out5_1))
        return [merged, skip]

    def _decode(self, taps: dict[str, Tensor], features: list[Tensor], alpha: float) -> Tensor:
        merged, skip = features
        if alpha != 1.0:
            merged = alpha * merged + (1.0 - alpha) * taps["relu4_1"]
            skip = alpha * skip + (1.0 - alpha) * taps["relu3_1"].float()
        return self.decoder(self._input(merged), self._input(skip))


def init_untrained_(model: StyleTransferModel, seed: int = 0) -> StyleTransferModel:
    """Give ``model`` deterministic, signal-preserving random weights (He init, zero bias, output
    layer centred on mid-grey), so untrained smoke runs show the input's structure and motion
    instead of a flat colour. Random weights never give a stylization."""
    generator = torch.Generator().manual_seed(seed)
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    with torch.no_grad():
        for conv in convs:
            nn.init.kaiming_normal_(conv.weight, nonlinearity="relu", generator=generator)
            nn.init.zeros_(conv.bias)
        last = (
            model.decoder.decoder_layer_2[-1]
            if isinstance(model, ImageAdaAttN)
            else model.decoder[-1]
        )
        last.weight.mul_(0.25)
        last.bias.fill_(0.5)
    return model


def build_model(config: ModelConfig) -> StyleTransferModel:
    """A model with random weights for ``config`` (load weights with :mod:`adaattn_video.weights`)."""
    if config.variant == "video":
        return VideoAdaAttN(config)
    return ImageAdaAttN(config)
