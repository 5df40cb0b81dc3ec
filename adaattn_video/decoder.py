"""Decoders from relu3_1 features (video model) or relu4_1 + relu3_1 skip (image model) to RGB.

Layouts follow the published AdaAttN repository's networks exactly, so the published ``decoder.N.weight`` /
``decoder_layer_K.N.weight`` keys load without renaming.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from adaattn_video.functional import ConvStack, ReflectionPad1

# (in, out) of each 3x3 reflection-padded conv, "U" = nearest x2 upsample. The last conv has no ReLU.
_FROM_RELU3_1: tuple[tuple[int, int] | str, ...] = (
    (256, 256), (256, 256), (256, 256), (256, 128), "U", (128, 128), (128, 64), "U", (64, 64), (64, 3),
)  # fmt: skip


def _conv_stack(layout: tuple[tuple[int, int] | str, ...], first_in: int) -> ConvStack:
    modules: list[nn.Module] = []
    for i, item in enumerate(layout):
        if item == "U":
            modules.append(nn.Upsample(scale_factor=2, mode="nearest"))
            continue
        c_in, c_out = item
        modules += [ReflectionPad1(), nn.Conv2d(first_in if i == 0 else c_in, c_out, 3)]
        if i != len(layout) - 1:
            modules.append(nn.ReLU(inplace=True))  # the conv output is not kept
    return ConvStack(*modules)


def video_decoder() -> ConvStack:
    """(B, 256, H/4, W/4) relu3_1-like features -> (B, 3, H, W). 25 modules, convs at 1, 4, 7, 10,
    14, 17, 21, 24."""
    return _conv_stack(_FROM_RELU3_1, 256)


class ImageDecoder(nn.Module):
    """The image model's decoder: relu4_1-level features (B, 512, H/8, W/8) and the relu3_1 skip
    (B, 256, H/4, W/4) -> (B, 3, H, W)."""

    def __init__(self) -> None:
        super().__init__()
        self.decoder_layer_1 = ConvStack(
            ReflectionPad1(), nn.Conv2d(512, 256, 3), nn.ReLU(), nn.Upsample(scale_factor=2)
        )
        self.decoder_layer_2 = _conv_stack(_FROM_RELU3_1, 512)

    def forward(self, features: Tensor, skip: Tensor) -> Tensor:
        return self.decoder_layer_2(torch.cat([self.decoder_layer_1(features), skip], dim=1))
