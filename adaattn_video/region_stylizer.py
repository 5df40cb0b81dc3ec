"""Frames in, region-stylized frames out: a :class:`FrameStylizer` with regions.

:class:`RegionStylizer` has the stylizer interface every front end uses (``stylize_uint8``,
``__call__``, ``device``, ``style_id``, ``alpha``, ``set_style``), so the pipeline, ``image``,
``render`` and ``live`` take it unchanged. The stylizer's own style is the default style
(positions covered by no mask, see :mod:`adaattn_video.masked_attention`); each region adds a style and a
mask function that turns the content frames into the region's content mask.

Masks are functions, not files: this package never reads videos. ``mask(content, first_index)``
gets the batch (B, 3, H, W) float in [0, 1] on the stylizer's device (after the stylizer's
``size`` resize, before padding) and the index of its first frame in the stream (frames are
counted from 0 in the order they are stylized), and returns (B, 1, H, W) or (1, 1, H, W) in
[0, 1] on that device.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from adaattn_video.masked_attention import (
    UNCOVERED,
    RegionError,
    Uncovered,
    encode_masked_style,
    stylize_regions,
)
from adaattn_video.model import StyleFeatures, StyleTransferModel
from adaattn_video.stylizer import (
    ActiveStyle,
    FrameStylizer,
    StyleImage,
    StylizerConfig,
    Uint8FrameInterface,
    crop_output,
    resize_images,
    to_image_tensor,
)

MaskFunction = Callable[[Tensor, int], Tensor]


@dataclass(frozen=True)
class Region:
    """One encoded region: its style features, its content-mask function and a name."""

    features: StyleFeatures
    mask: MaskFunction
    name: str


def encode_region_style(
    stylizer: FrameStylizer, image: StyleImage, style_mask: Tensor | None = None
) -> StyleFeatures:
    """A region's style features: the whole image (``stylizer.encode_style``), or the part a
    style mask (H, W) float in [0, 1] selects (resized with the image, bilinear; the padding
    added for the model's size multiple is outside the mask)."""
    if style_mask is None:
        return stylizer.encode_style(image)
    style = to_image_tensor(image).to(stylizer.device).unsqueeze(0).float().div_(255.0)
    mask = style_mask.to(stylizer.device, torch.float32).view(1, 1, *style_mask.shape[-2:])
    size = stylizer.style_input_size(*style.shape[-2:])
    style = resize_images(style, size)
    mask = resize_images(mask, size).clamp_(0.0, 1.0)
    padded, _ = stylizer.pad(style)
    pad_h, pad_w = padded.shape[-2] - size[0], padded.shape[-1] - size[1]
    mask = F.pad(mask, (0, pad_w, 0, pad_h))
    with torch.inference_mode():
        return encode_masked_style(stylizer.model, padded, mask)


class RegionStylizer(Uint8FrameInterface):
    """A :class:`FrameStylizer` whose frames get a style per region (see the module docstring).

    The wrapped stylizer's style (``set_style``) is the default style, its ``alpha`` the
    content strength; :meth:`set_regions` replaces every region at once (from any thread; the
    next batch uses the new ones). Frames are counted in the order they are stylized, so mask
    sequences stay in step with an input that drops no frame.
    """

    def __init__(
        self,
        stylizer: FrameStylizer,
        regions: Sequence[Region],
        *,
        uncovered: Uncovered = "style",
    ) -> None:
        if uncovered not in UNCOVERED:
            raise RegionError(f"uncovered must be one of {', '.join(UNCOVERED)}, got {uncovered!r}")
        self.stylizer = stylizer
        self.uncovered: Uncovered = uncovered
        self._regions: tuple[Region, ...] = ()
        self._lock = threading.Lock()
        self.frames_done = 0
        self.set_regions(regions)

    # -- the stylizer interface -------------------------------------------------------------
    @property
    def device(self) -> torch.device:
        return self.stylizer.device

    @property
    def config(self) -> StylizerConfig:
        return self.stylizer.config

    @property
    def model(self) -> StyleTransferModel:
        return self.stylizer.model

    @property
    def alpha(self) -> float:
        return self.stylizer.alpha

    @alpha.setter
    def alpha(self, value: float) -> None:
        self.stylizer.alpha = value

    @property
    def style(self) -> ActiveStyle:
        return self.stylizer.style

    def set_style(self, *args: Any, **kwargs: Any) -> ActiveStyle:
        """Replace the default style (see :meth:`FrameStylizer.set_style`)."""
        return self.stylizer.set_style(*args, **kwargs)

    def encode_style(self, image: StyleImage) -> StyleFeatures:
        return self.stylizer.encode_style(image)

    @property
    def regions(self) -> tuple[Region, ...]:
        return self._regions

    @property
    def style_id(self) -> str:
        names = ",".join(region.name for region in self._regions)
        return f"{self.stylizer.style_id}|regions:{names}"

    def set_regions(self, regions: Sequence[Region]) -> None:
        regions = tuple(regions)
        if not regions:
            raise RegionError("expected at least one region (a style and a mask), got none")
        with self._lock:
            self._regions = regions

    # -- frames -----------------------------------------------------------------------------
    def masks(
        self, content: Tensor, first_index: int, regions: Sequence[Region] | None = None
    ) -> Tensor:
        """(B, R, H, W) float32 content masks of ``regions`` (default: the current ones) for
        ``content`` (B, 3, H, W)."""
        b, _, h, w = content.shape
        out = []
        for region in self._regions if regions is None else regions:
            mask = region.mask(content, first_index)
            if mask.ndim != 4 or mask.shape[1] != 1 or mask.shape[0] not in (1, b):
                raise ValueError(
                    f"region {region.name}: a mask function must return (B, 1, H, W), "
                    f"got {tuple(mask.shape)}"
                )
            if tuple(mask.shape[-2:]) != (h, w):
                mask = F.interpolate(mask.float(), size=(h, w), mode="bilinear")
            out.append(mask.to(content.device, torch.float32).expand(b, -1, -1, -1))
        return torch.cat(out, dim=1).clamp_(0.0, 1.0)

    @torch.inference_mode()
    def stylize_tensor(self, content: Tensor, first_index: int | None = None) -> Tensor:
        """(B, 3, H, W) float in [0, 1] -> (B, 3, H', W') float32 in [0, 1], as
        :meth:`FrameStylizer.stylize_tensor` with regions. ``first_index`` defaults to the
        count of frames stylized so far."""
        stylizer = self.stylizer
        active = stylizer.style
        content = stylizer.fit_content(content)
        if first_index is None:
            first_index = self.frames_done
        self.frames_done = first_index + content.shape[0]
        regions = self._regions  # one consistent set for the batch, even if replaced meanwhile
        masks = self.masks(content, first_index, regions)
        padded, (h, w) = stylizer.pad(content)
        masks = F.pad(masks, (0, padded.shape[-1] - w, 0, padded.shape[-2] - h), mode="replicate")
        out = stylize_regions(
            stylizer.model,
            padded,
            active.features,
            active.weights,
            [region.features for region in regions],
            masks,
            uncovered=self.uncovered,
            alpha=stylizer.alpha,
        )
        return crop_output(out, (h, w))


def region_name(style: StyleImage, index: int) -> str:
    """A short name for a region's style (file stem, else ``regionN``)."""
    return Path(style).stem if isinstance(style, (str, Path)) else f"region{index + 1}"
