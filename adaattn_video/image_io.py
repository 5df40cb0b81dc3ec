"""Reading and writing still images (content photos, style paintings) with Pillow.

Pillow is already a dependency of torchvision; torchvision's own image codecs are deprecated.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError
from torch import Tensor

from adaattn_video.errors import ImageReadError


def read_image(path: str | Path) -> Tensor:
    """Decode a JPEG/PNG/WebP/BMP/... file to a (3, H, W) uint8 RGB tensor.

    Raises:
        ImageReadError: the file is missing or is not a decodable image.
    """
    path = Path(path)
    if not path.is_file():
        raise ImageReadError(f"image {path} does not exist (give a JPEG or PNG file)")
    try:
        with Image.open(path) as image:
            array = np.asarray(image.convert("RGB"))
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError) as err:
        raise ImageReadError(
            f"image {path} could not be decoded ({err}); give a JPEG or PNG file"
        ) from err
    return torch.from_numpy(array.copy()).permute(2, 0, 1).contiguous()


def write_image(path: str | Path, image: Tensor) -> None:
    """Write a (3, H, W) uint8 tensor; the format follows the suffix (.png, .jpg, ...)."""
    if image.dtype != torch.uint8 or image.ndim != 3 or image.shape[0] != 3:
        raise ValueError(
            f"expected a (3, H, W) uint8 tensor, got {tuple(image.shape)} {image.dtype}"
        )
    Image.fromarray(image.permute(1, 2, 0).cpu().numpy()).save(path)
