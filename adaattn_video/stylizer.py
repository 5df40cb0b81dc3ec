"""Frames in, stylized frames out: the one object every front end (image, render, live) uses.

It owns the uint8 <-> float conversion, padding to the model's size multiple, the compute
device and precision, the current style (switchable at any time, from any thread) and the
content strength ``alpha``.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from adaattn_video.errors import MissingWeightsError
from adaattn_video.image_io import read_image
from adaattn_video.model import StyleFeatures, StyleTransferModel
from adaattn_video.settings import (
    PRECISIONS,
    StylizerSettingError,
    StylizerSpec,
    check_alpha,
    check_device,
    check_size,
    check_style_size,
    check_style_weights,
    cpu_has_fast_bf16,
    output_size,
    resolve_device,
    resolve_precision,
)
from adaattn_video.temporal_stats import observe_frames

log = logging.getLogger(__name__)

StyleImage = str | Path | np.ndarray | Tensor


@dataclass(frozen=True)
class StylizerConfig:
    """How frames are stylized.

    Attributes:
        device: torch device string ("cpu", "cuda", "cuda:1").
        precision: "fp32", "fp16" or "bf16" for the convolutions (attention stays fp32).
        alpha: content strength in [0, 1]; 1 = fully stylized.
        style_size: longer side (pixels) style images are resized to, or None for native size.
        size: (height, width) frames are resized to before stylizing (the output size), N (the
            longer side, aspect kept), or None to keep each frame's size.
        channels_last: convolutions in channels-last layout (about 1.2-1.4x faster on CPUs
            with oneDNN and on tensor-core GPUs; same numbers up to float rounding).
    """

    device: str = "cpu"
    precision: str = "fp32"
    alpha: float = 1.0
    style_size: int | None = None
    size: int | tuple[int, int] | None = None
    channels_last: bool = True

    def __post_init__(self) -> None:
        if self.precision not in PRECISIONS:
            raise StylizerSettingError(
                f"precision must be one of {sorted(PRECISIONS)}, got {self.precision!r}"
            )
        check_alpha(self.alpha)
        check_style_size(self.style_size)
        check_size(self.size)
        if check_device(self.device) == "auto":
            raise StylizerSettingError("device 'auto' must be resolved first (resolve_device)")

    @classmethod
    def from_spec(cls, spec: StylizerSpec) -> StylizerConfig:
        """The config of a resolved :class:`StylizerSpec` (device and precision not ``auto``)."""
        return cls(
            device=spec.device,
            precision=spec.precision,
            alpha=spec.alpha,
            style_size=spec.style_size,
            size=spec.size,
        )

    def output_size(self, height: int, width: int) -> tuple[int, int]:
        """(height, width) a (height, width) frame is stylized at."""
        return output_size(self.size, height, width)


@dataclass(frozen=True)
class ActiveStyle:
    """The styles frames are currently stylized with (replaced as a whole, never mutated)."""

    features: tuple[StyleFeatures, ...]
    weights: tuple[float, ...]
    style_id: str


def to_image_tensor(image: StyleImage, *, max_side: int | None = None) -> Tensor:
    """A path, (H, W, 3) uint8 array/tensor or (3, H, W) uint8 tensor -> (3, H, W) uint8 tensor.

    A file is decoded at reduced scale when it is much larger than ``max_side`` (never below
    it), so a big painting costs a fraction of its full-size memory before it is resized."""
    if isinstance(image, (str, Path)):
        return read_image(image, max_side=max_side)
    tensor = (
        torch.from_numpy(np.ascontiguousarray(image)) if isinstance(image, np.ndarray) else image
    )
    if tensor.dtype != torch.uint8 or tensor.ndim != 3:
        raise ValueError(
            f"expected an RGB uint8 image, got shape {tuple(tensor.shape)} {tensor.dtype}"
        )
    if tensor.shape[-1] == 3 and tensor.shape[0] != 3:
        tensor = tensor.permute(2, 0, 1)
    if tensor.shape[0] != 3:
        raise ValueError(f"expected 3 colour channels, got shape {tuple(tensor.shape)}")
    return tensor


def resize_images(images: Tensor, size: tuple[int, int]) -> Tensor:
    """(B, C, H, W) float -> (B, C, *size), bilinear with antialiasing (the resize of every
    frame, style and mask); the input itself when it has that size already."""
    if tuple(images.shape[-2:]) == tuple(size):
        return images
    return F.interpolate(images, size=size, mode="bilinear", antialias=True, align_corners=False)


def crop_output(out: Tensor, size: tuple[int, int]) -> Tensor:
    """The model's output on padded frames (B, 3, H_pad, W_pad) -> (B, 3, *size) float32
    clamped to [0, 1]: the padding of :meth:`FrameStylizer.pad` removed."""
    h, w = size
    return out[..., :h, :w].float().clamp_(0.0, 1.0)


class Uint8FrameInterface:
    """``stylize_uint8`` and ``__call__`` (uint8 frames in and out) on top of a subclass's
    ``stylize_tensor`` ((B, 3, H, W) float in [0, 1] -> float in [0, 1]) and ``device``: the
    stylizer interface every front end uses, shared by :class:`FrameStylizer` and the region
    stylizer."""

    device: torch.device

    def stylize_tensor(self, content: Tensor) -> Tensor:
        raise NotImplementedError

    @torch.inference_mode()
    def stylize_uint8(self, frames: Tensor) -> Tensor:
        """(B, H, W, 3) uint8 tensor (any device) -> (B, H', W', 3) uint8 on ``device``."""
        if frames.dtype != torch.uint8 or frames.ndim != 4 or frames.shape[-1] != 3:
            raise ValueError(
                f"expected (B, H, W, 3) uint8 frames, got {tuple(frames.shape)} {frames.dtype}"
            )
        content = frames.to(self.device, non_blocking=True).permute(0, 3, 1, 2).float().div_(255.0)
        out = self.stylize_tensor(content)
        return out.mul_(255.0).round_().to(torch.uint8).permute(0, 2, 3, 1).contiguous()

    def __call__(self, frames: np.ndarray | Tensor) -> np.ndarray | Tensor:
        """(H, W, 3) or (B, H, W, 3) uint8 numpy/torch -> the same type and layout, stylized."""
        single = frames.ndim == 3
        is_numpy = isinstance(frames, np.ndarray)
        tensor = torch.from_numpy(np.ascontiguousarray(frames)) if is_numpy else frames
        if single:
            tensor = tensor.unsqueeze(0)
        out = self.stylize_uint8(tensor)
        if single:
            out = out[0]
        if is_numpy:
            return out.cpu().numpy()
        return out.to(frames.device)


class FrameStylizer(Uint8FrameInterface):
    """Stylizes RGB uint8 frames with a model and a switchable style.

    ``stylizer(frames)`` takes (H, W, 3) or (B, H, W, 3) uint8 (numpy or torch) and returns the
    same type and layout; ``set_style`` / ``alpha`` may be changed from another thread and take
    effect on the next call.
    """

    def __init__(self, model: StyleTransferModel, config: StylizerConfig | None = None) -> None:
        self.config = config or StylizerConfig()
        self.device = torch.device(self.config.device)
        self.dtype = PRECISIONS[self.config.precision]
        self.model = model.eval().to(self.device)
        self.model.set_compute_dtype(self.dtype, channels_last=self.config.channels_last)
        self._alpha = self.config.alpha
        self._style: ActiveStyle | None = None
        self._style_lock = threading.Lock()  # serialises style encodes, not frames

    # -- style and alpha --------------------------------------------------------------------
    @property
    def alpha(self) -> float:
        return self._alpha

    @alpha.setter
    def alpha(self, value: float) -> None:
        self._alpha = check_alpha(value)

    @property
    def style(self) -> ActiveStyle:
        if self._style is None:
            raise RuntimeError("no style set: call set_style() first")
        return self._style

    @property
    def style_id(self) -> str:
        return self.style.style_id

    def encode_style(self, image: StyleImage) -> StyleFeatures:
        """Encode one style image (resized to ``style_size`` when configured)."""
        style = to_image_tensor(image, max_side=self.config.style_size).to(self.device)
        style = style.unsqueeze(0).float().div_(255.0)
        style = resize_images(style, self.style_input_size(*style.shape[-2:]))
        with torch.inference_mode():
            return self.model.encode_style(self.pad(style)[0])

    def style_input_size(self, height: int, width: int) -> tuple[int, int]:
        """(height, width) a (height, width) style image is encoded at: longer side
        ``config.style_size`` (aspect kept), or as it is when that is None."""
        return output_size(self.config.style_size, height, width)

    def set_style(
        self,
        styles: StyleImage | Sequence[StyleImage],
        weights: Sequence[float] | None = None,
        *,
        style_id: str | None = None,
    ) -> ActiveStyle:
        """Encode and switch to one style or a weighted mix of several; returns the new style.

        Raises the reader's error (e.g. :class:`~adaattn_video.errors.ImageReadError`) without
        changing the current style when an image is bad.
        """
        if isinstance(styles, (str, Path, np.ndarray, Tensor)):
            styles = [styles]
        styles = list(styles)
        if not styles:
            raise ValueError("expected at least one style image, got none")
        mix = check_style_weights(weights, len(styles))
        if style_id is None:
            names = [
                Path(s).stem if isinstance(s, (str, Path)) else f"array{i}"
                for i, s in enumerate(styles)
            ]
            style_id = (
                "+".join(names)
                if len(names) == 1
                else "+".join(f"{n}:{w:.2f}" for n, w in zip(names, mix, strict=True))
            )
        with self._style_lock:
            features = tuple(self.encode_style(s) for s in styles)
            active = ActiveStyle(features, tuple(mix), style_id)
            self._style = active
        log.info("style set to %s", style_id)
        return active

    # -- frames -----------------------------------------------------------------------------
    def fit_content(self, content: Tensor) -> Tensor:
        """(B, 3, H, W) float -> (B, 3, H', W'), (H', W') = ``config.output_size(H, W)``."""
        return resize_images(content, self.config.output_size(*content.shape[-2:]))

    def pad(self, images: Tensor) -> tuple[Tensor, tuple[int, int]]:
        """Replicate-pad (B, C, H, W) so both sides are multiples of the model's size multiple
        (and at least its smallest side); returns the padded images and (H, W) for
        :func:`crop_output`."""
        h, w = images.shape[-2:]
        m = self.model.size_multiple
        target_h = max(-(-h // m) * m, self.model.min_side)
        target_w = max(-(-w // m) * m, self.model.min_side)
        if (target_h, target_w) != (h, w):
            images = F.pad(images, (0, target_w - w, 0, target_h - h), mode="replicate")
        return images, (h, w)

    @torch.inference_mode()
    def stylize_tensor(self, content: Tensor, *, fit: bool = True) -> Tensor:
        """(B, 3, H, W) float in [0, 1] on the stylizer's device -> (B, 3, H', W') float32 in
        [0, 1], (H', W') = ``config.output_size(H, W)``; ``fit=False`` keeps (H, W) (a caller
        that sized the frames itself: the temporal wrapper's smaller working size)."""
        active = self.style
        padded, size = self.pad(self.fit_content(content) if fit else content)
        observe_frames(padded)  # temporal statistics hook: no-op unless a stats_scope is active
        out = self.model.stylize(padded, active.features, active.weights, self._alpha)
        return crop_output(out, size)


def open_spec_model(spec: StylizerSpec) -> StyleTransferModel:
    """The model ``spec`` selects: ``weights``; else random weights with ``untrained`` (of the
    ``model`` architecture); else the cached ``model`` (video or image)."""
    from adaattn_video.checkpoint import load_checkpoint, open_model
    from adaattn_video.config import IMAGE_MODEL, VIDEO_MODEL

    if spec.untrained:
        config = VIDEO_MODEL if spec.model == "video" else IMAGE_MODEL
        return open_model(None, untrained=True, config=config)
    if spec.weights is None and spec.model == "image":
        from adaattn_video.weights import cached_checkpoint

        cached = cached_checkpoint("image")
        if not cached.is_file():
            raise MissingWeightsError(
                f"no image model in the cache ({cached}): run `stylestream weights download "
                "--variant image` (needs internet) or `stylestream weights import DIR_OR_ZIP "
                "--variant image`, or pass --weights FILE.safetensors"
            )
        return load_checkpoint(cached)
    return open_model(spec.weights)


def open_stylizer(
    spec: StylizerSpec,
    *,
    model: StyleTransferModel | None = None,
    styles: Sequence[StyleImage] | None = None,
) -> FrameStylizer:
    """The stylizer every command builds: settings checked first (one-line
    :class:`StylizerSettingError`: no style, device not here...), then the model (``model``,
    else :func:`open_spec_model`), then the styles encoded (``styles`` overrides
    ``spec.styles``, e.g. with in-memory images)."""
    images = list(spec.styles) if styles is None else list(styles)
    if not images:
        spec.require_styles()
    check_style_weights(spec.style_weights, len(images))
    spec = spec.resolved()
    config = StylizerConfig.from_spec(spec)
    if model is None:
        model = open_spec_model(spec)
    stylizer = FrameStylizer(model, config)
    stylizer.set_style(images, spec.style_weights)
    return stylizer


__all__ = [
    "PRECISIONS",
    "ActiveStyle",
    "FrameStylizer",
    "StylizerConfig",
    "StylizerSettingError",
    "StylizerSpec",
    "Uint8FrameInterface",
    "check_alpha",
    "check_style_weights",
    "cpu_has_fast_bf16",
    "crop_output",
    "open_spec_model",
    "open_stylizer",
    "resize_images",
    "resolve_device",
    "resolve_precision",
]
