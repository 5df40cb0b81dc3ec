"""Reading and writing still images (content photos, style paintings) with Pillow: the one reader.

Pillow is already a dependency of torchvision; torchvision's own image codecs are deprecated.

Untrusted files are bounded before their pixels are decoded: an image whose header declares
more than :data:`MAX_IMAGE_PIXELS` decoded pixels (a "decompression bomb": a 15000x15000 PNG is a
few KB on disk and 675 MB decoded) is refused with one line. When the caller knows the size it
needs (``max_side``), a JPEG is decoded at 1/2, 1/4 or 1/8 scale (libjpeg's DCT scaling through
``Image.draft``) and any image is then shrunk by an integer factor (``Image.reduce``), never below
``max_side``: a big painting (8000x6000 and more) costs a few megabytes instead of hundreds.

16-bit PNGs (grayscale ``I;16`` and RGB) are scaled from 16 to 8 bits (``v * 255 / 65535``),
not clipped (which turned a 16-bit grayscale picture nearly white).
"""

from __future__ import annotations

import math
import re
import warnings
from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError
from torch import Tensor

from adaattn_video.errors import ImageReadError, ImageTooLargeError

# Most pixels decoded from one file (after JPEG draft scaling): 50 megapixels, e.g. 8000x6000,
# 150 MB as 8-bit RGB. Pillow's own refusal of anything declaring over 2 x
# ``Image.MAX_IMAGE_PIXELS`` (179 MP by default) in its header applies too.
MAX_IMAGE_PIXELS = 50_000_000
_SIXTEEN_BIT_MODES = frozenset({"I;16", "I;16L", "I;16B", "I;16N", "I"})


def _too_large(path: Path, width: int, height: int) -> ImageTooLargeError:
    return ImageTooLargeError(
        f"image {path} is {width}x{height} ({width * height / 1e6:.0f} megapixels), more than "
        f"the {MAX_IMAGE_PIXELS / 1e6:.0f}-megapixel limit; resize it first (a style or content "
        "picture needs a few megapixels at most)"
    )


def _draft_size(width: int, height: int, max_side: int) -> tuple[int, int]:
    """The smallest size with the aspect of (width, height) whose longer side is >= max_side."""
    scale = max_side / max(width, height)
    return max(1, math.ceil(width * scale)), max(1, math.ceil(height * scale))


def _to_rgb8(image: Image.Image) -> Image.Image:
    """8-bit RGB; 16-bit grayscale scaled from its full range (``I`` taken as 16-bit, as Pillow
    decodes 16-bit PNGs), everything else through Pillow's conversion."""
    if image.mode in _SIXTEEN_BIT_MODES:
        wide = np.clip(np.asarray(image).astype(np.uint32), 0, 65535)
        gray = ((wide * 255 + 32767) // 65535).astype(np.uint8)
        image = Image.fromarray(gray, "L")
    return image if image.mode == "RGB" else image.convert("RGB")


def read_image(path: str | Path, *, max_side: int | None = None) -> Tensor:
    """Decode a JPEG/PNG/WebP/BMP/... file to a (3, H, W) uint8 RGB tensor.

    Args:
        path: the image file.
        max_side: the longer side the caller will resize to, if known: the image is decoded
            (JPEG) and reduced by integer factors to a longer side in ``[max_side, 2*max_side)``
            when bigger, so the caller's own resize still does the final, antialiased step.
            None decodes the native size.

    Raises:
        ImageReadError: the file is missing or is not a decodable image.
        ImageTooLargeError: it decodes to more than :data:`MAX_IMAGE_PIXELS` pixels.
    """
    path = Path(path)
    if max_side is not None and max_side < 1:
        raise ValueError(f"max_side must be >= 1 pixel, got {max_side}")
    if not path.is_file():
        raise ImageReadError(f"image {path} does not exist (give a JPEG or PNG file)")
    try:
        with warnings.catch_warnings():
            # Between 1x and 2x Pillow's limit it only warns; our own limit below decides.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(path) as image:
                width, height = image.size
                if max_side is not None and max(width, height) > max_side:
                    image.draft(None, _draft_size(width, height, max_side))  # JPEG only
                if image.width * image.height > MAX_IMAGE_PIXELS:
                    raise _too_large(path, width, height)
                image.load()  # decode now, while the file is open
                rgb = _to_rgb8(image)
    except ImageReadError:
        raise
    except Image.DecompressionBombError as err:  # over 2x Pillow's own limit, from the header
        declared = re.search(r"\((\d+) pixels\)", str(err))
        size = f"{int(declared.group(1)) / 1e6:.0f} megapixels" if declared else "too many pixels"
        raise ImageTooLargeError(
            f"image {path} declares {size}, more than the {MAX_IMAGE_PIXELS / 1e6:.0f}-megapixel "
            "limit; resize it first (a style or content picture needs a few megapixels at most)"
        ) from err
    except (UnidentifiedImageError, OSError, ValueError) as err:
        raise ImageReadError(
            f"image {path} could not be decoded ({err}); give a JPEG or PNG file"
        ) from err
    if max_side is not None and max(rgb.size) >= 2 * max_side:
        rgb = rgb.reduce(max(rgb.size) // max_side)
    return torch.from_numpy(np.array(rgb)).permute(2, 0, 1).contiguous()


def write_image(path: str | Path, image: Tensor) -> None:
    """Write a (3, H, W) uint8 tensor; the format follows the suffix (.png, .jpg, ...)."""
    if image.dtype != torch.uint8 or image.ndim != 3 or image.shape[0] != 3:
        raise ValueError(
            f"expected a (3, H, W) uint8 tensor, got {tuple(image.shape)} {image.dtype}"
        )
    Image.fromarray(image.permute(1, 2, 0).cpu().numpy()).save(path)
