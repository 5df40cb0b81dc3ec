"""Reading and writing still images (content photos, style paintings) with torchvision.io."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import Tensor
from torchvision.io import ImageReadMode, decode_image, write_png

from adaattn_video.errors import ImageReadError


def read_image(path: str | Path) -> Tensor:
    """Decode a JPEG/PNG/WebP/GIF file to a (3, H, W) uint8 RGB tensor.

    Raises:
        ImageReadError: the file is missing or is not a decodable image.
    """
    path = Path(path)
    if not path.is_file():
        raise ImageReadError(f"image {path} does not exist (give a JPEG or PNG file)")
    try:
        data = torch.frombuffer(bytearray(path.read_bytes()), dtype=torch.uint8)
        return decode_image(data, mode=ImageReadMode.RGB)
    except (RuntimeError, ValueError) as err:
        raise ImageReadError(
            f"image {path} could not be decoded ({err}); give a JPEG or PNG file"
        ) from err


def write_image(path: str | Path, image: Tensor) -> None:
    """Write a (3, H, W) uint8 tensor as PNG."""
    if image.dtype != torch.uint8 or image.ndim != 3 or image.shape[0] != 3:
        raise ValueError(
            f"expected a (3, H, W) uint8 tensor, got {tuple(image.shape)} {image.dtype}"
        )
    write_png(image.cpu(), str(path))
