"""The frozen VGG-19 encoders of the published vgg_normalised.pth, tapped at relu1_1 .. relu5_1.

Both families are built from one layer table so their module indices (and therefore their
state-dict keys) match the published files exactly: ``"0.weight"``, ``"2.weight"``, ... for the
normalised VGG, torchvision's ``features`` indices for the torchvision family.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from adaattn_video.config import TAPS, EncoderFamily
from adaattn_video.functional import ReflectionPad1, run_layers

# VGG-19 convolution widths by block; "M" is a max-pool. The tap of a block is its first ReLU.
_VGG19_LAYOUT: tuple[int | str, ...] = (
    64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M", 512, 512, 512, 512,
)  # fmt: skip

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def _layers(family: EncoderFamily) -> tuple[list[nn.Module], dict[str, int]]:
    """All encoder modules up to relu5_1's block end, and the module index of each tap."""
    modules: list[nn.Module] = []
    taps: dict[str, int] = {}
    normalised = family == "vgg_normalised"
    if normalised:
        modules.append(nn.Conv2d(3, 3, kernel_size=1))  # colour/mean transform baked in
    in_channels = 3
    block = 1
    first_relu_of_block = True
    for width in _VGG19_LAYOUT:
        if width == "M":
            modules.append(nn.MaxPool2d(2, 2, ceil_mode=normalised))
            block += 1
            first_relu_of_block = True
            continue
        if normalised:
            modules += [ReflectionPad1(), nn.Conv2d(in_channels, int(width), 3)]
        else:
            modules.append(nn.Conv2d(in_channels, int(width), 3, padding=1))
        modules.append(nn.ReLU(inplace=True))  # the tap is this output; the conv output is not kept
        if first_relu_of_block:
            taps[f"relu{block}_1"] = len(modules) - 1
            first_relu_of_block = False
        in_channels = int(width)
    return modules, taps


class VGGEncoder(nn.Sequential):
    """A frozen VGG-19 prefix that returns its taps.

    Input: (B, 3, H, W) RGB in [0, 1] (the torchvision family normalises with ImageNet statistics
    itself). Output: ``{"relu1_1": (B, 64, H, W), "relu2_1": (B, 128, H/2, W/2), ...}`` up to
    ``deepest``. Modules past ``deepest`` are not built, so the state dict holds only what is used.
    """

    def __init__(
        self, family: EncoderFamily = "vgg_normalised", *, deepest: str = "relu3_1"
    ) -> None:
        if deepest not in TAPS:
            raise ValueError(f"deepest must be one of {TAPS}, got {deepest!r}")
        modules, taps = _layers(family)
        last = taps[deepest]
        super().__init__(*modules[: last + 1])
        self.family = family
        self.deepest = deepest
        self.tap_index = {name: i for name, i in taps.items() if i <= last}
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)
        self.requires_grad_(False)
        self.eval()

    def train(self, mode: bool = True) -> VGGEncoder:
        """Always stays in eval mode: the encoder is frozen."""
        return super().train(False)

    def forward(self, images: Tensor) -> dict[str, Tensor]:  # type: ignore[override]
        x = images
        if self.family == "torchvision_vgg19":
            x = (x - self.mean.to(x.dtype)) / self.std.to(x.dtype)
        wanted = {i: name for name, i in self.tap_index.items()}
        return run_layers(self, x, wanted)[1]
