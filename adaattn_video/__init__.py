"""Video-tuned AdaAttN in pure PyTorch: encoders, attention, decoders, style statistics, weights.

Typical use::

    from adaattn_video import FrameStylizer, StylizerConfig, open_model

    stylizer = FrameStylizer(open_model("video.safetensors"), StylizerConfig(device="cuda"))
    stylizer.set_style("painting.jpg")
    out = stylizer(frames)  # (B, H, W, 3) uint8 -> (B, H, W, 3) uint8
"""

from adaattn_video.checkpoint import load_checkpoint, open_model, save_checkpoint
from adaattn_video.config import IMAGE_MODEL, VIDEO_MODEL, ModelConfig
from adaattn_video.errors import (
    CheckpointError,
    ImageReadError,
    MissingWeightsError,
    StylestreamError,
)
from adaattn_video.model import ImageAdaAttN, StyleTransferModel, VideoAdaAttN, build_model
from adaattn_video.settings import StylizerSpec, resolve_device, resolve_precision
from adaattn_video.stylizer import FrameStylizer, StylizerConfig, open_stylizer

__all__ = [
    "IMAGE_MODEL",
    "VIDEO_MODEL",
    "CheckpointError",
    "FrameStylizer",
    "ImageAdaAttN",
    "ImageReadError",
    "MissingWeightsError",
    "ModelConfig",
    "StyleTransferModel",
    "StylestreamError",
    "StylizerConfig",
    "StylizerSpec",
    "VideoAdaAttN",
    "build_model",
    "load_checkpoint",
    "open_model",
    "open_stylizer",
    "resolve_device",
    "resolve_precision",
    "save_checkpoint",
]
