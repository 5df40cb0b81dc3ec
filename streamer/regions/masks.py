"""Where region masks come from: a still picture, a mask video or frames, or a chroma key.

Every mask source is a function ``mask(content, first_index) -> (B or 1, 1, H, W)`` float in
[0, 1] on the content's device (the :data:`adaattn_video.region_stylizer.MaskFunction`
interface). White (1) = inside the region; ``invert`` swaps inside and outside.

* :class:`StillMask`: one grayscale picture (PNG, JPEG, ...) for every frame.
* :class:`SequenceMask`: a mask video or numbered frames in step with the input: frame i of the
  input uses mask i. Its frame count must equal the input's (:func:`check_same_length`).
* :class:`ChromaKeyMask`: the region is where the frame has the key colour, computed on the
  frame's device with kornia: the distance between the key's and the pixel's CIELAB chroma
  (a*, b*), the pixel's scaled by L*_key / L*_pixel so shadows and highlights of the key colour
  still key; ``tolerance`` (Lab units) is fully inside, ``softness`` more is a linear ramp to
  outside.

Resizing: a mask whose size differs from the frame's is resized to the frame with bilinear
interpolation (antialiased when shrinking); the model then averages it over each attention
level's cells (area), see :mod:`adaattn_video.masked_attention`.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from adaattn_video.errors import ImageReadError, ImageTooLargeError, StylestreamError
from adaattn_video.image_io import read_image
from streamer.frames import Frame
from streamer.sources import SourceError, SourceNotFoundError, is_image_sequence, open_source

STILL_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff", ".gif")

# Named key colours: the usual chroma-key paints (sRGB).
KEY_COLOURS: dict[str, tuple[int, int, int]] = {
    "green": (0, 177, 64),
    "blue": (0, 71, 187),
}


# Lightness below which chroma is not scaled up (near-black pixels have unreliable hue).
MIN_LIGHTNESS = 20.0


class MaskError(StylestreamError, ValueError):
    """A mask that cannot be used: unreadable, empty, wrong length, bad key colour."""


class MaskNotFoundError(StylestreamError, FileNotFoundError):
    """A mask file, folder or frame pattern that does not exist."""


def resize_to(mask: Tensor, size: tuple[int, int]) -> Tensor:
    """(B, 1, h, w) -> (B, 1, H, W): bilinear, antialiased when shrinking."""
    if tuple(mask.shape[-2:]) == tuple(size):
        return mask
    shrink = size[0] < mask.shape[-2] or size[1] < mask.shape[-1]
    return F.interpolate(
        mask, size=size, mode="bilinear", antialias=shrink, align_corners=False
    ).clamp_(0.0, 1.0)


def read_mask_image(path: str | Path) -> Tensor:
    """A picture as a (H, W) float32 mask in [0, 1] (grayscale; white = 1), decoded by the one
    image reader (:func:`adaattn_video.image_io.read_image`), so its pixel limit bounds a mask
    too (a few-KB PNG can declare 12000x12000 pixels: 576 MB as a float mask). Gray is
    Pillow's ``L`` conversion (ITU-R 601-2 luma, in integers), so a grayscale mask keeps its
    exact values.

    Raises:
        MaskNotFoundError: no such file. MaskError: not a decodable picture, or too large.
    """
    path = Path(path)
    if not path.is_file():
        raise MaskNotFoundError(f"mask {path} does not exist (give a PNG where white = region)")
    try:
        rgb = read_image(path)  # (3, H, W) uint8
    except ImageTooLargeError as err:
        raise MaskError(f"mask {err}") from err
    except ImageReadError as err:
        raise MaskError(f"mask {path} could not be read as a picture ({err}); give a PNG") from err
    gray = torch.zeros(rgb.shape[1:], dtype=torch.int32)
    for channel, weight in zip(rgb, (19595, 38470, 7471), strict=True):  # one channel at a time
        gray.add_(channel.to(torch.int32) * weight)
    del rgb
    return gray.add_(0x8000).bitwise_right_shift_(16).to(torch.float32).div_(255.0)


def _luma(image: np.ndarray) -> Tensor:
    """(H, W, 3) uint8 RGB -> (H, W) float32 in [0, 1] (BT.601 luma)."""
    rgb = torch.from_numpy(image).float()
    return (rgb @ torch.tensor([0.299, 0.587, 0.114])).div_(255.0)


@dataclass
class StillMask:
    """One mask picture for every frame (see the module docstring)."""

    path: str
    invert: bool = False

    def __post_init__(self) -> None:
        mask = read_mask_image(self.path)
        if self.invert:
            mask = 1.0 - mask
        if float(mask.max()) <= 0.0:
            what = "is all white, so inverted it is empty" if self.invert else "has no white pixel"
            raise MaskError(f"mask {self.path} {what}: the region would cover nothing")
        self.mask = mask
        self._resized: dict[tuple[int, int, str], Tensor] = {}

    def __call__(self, content: Tensor, first_index: int) -> Tensor:
        size = tuple(content.shape[-2:])
        cache = (*size, str(content.device))
        if cache not in self._resized:
            mask = self.mask.to(content.device).view(1, 1, *self.mask.shape)
            self._resized[cache] = resize_to(mask, size)
        return self._resized[cache]


def is_sequence(uri: str) -> bool:
    """A mask that changes per frame: a video file, an image folder, pattern or glob."""
    if is_image_sequence(uri):
        return True
    return Path(uri).suffix.lower() not in STILL_SUFFIXES


def count_frames(uri: str) -> int | None:
    """Frames in a video file (its packets, counted without decoding) or an image sequence;
    None for a lavfi graph or a stream.

    Raises:
        MaskNotFoundError: the file or folder does not exist. MaskError: not a video.
    """
    from streamer.sources.images import list_images

    if uri.startswith("lavfi:") or "://" in uri:
        return None
    try:
        if is_image_sequence(uri):
            return len(list_images(uri))
    except SourceNotFoundError as err:
        raise MaskNotFoundError(str(err)) from err
    if not Path(uri).is_file():
        raise MaskNotFoundError(f"{uri} does not exist")
    import av

    try:
        with av.open(uri) as container:
            if not container.streams.video:
                raise MaskError(f"{uri} has no video stream")
            stream = container.streams.video[0]
            return sum(1 for packet in container.demux(stream) if packet.size)
    except av.FFmpegError as err:
        raise MaskError(f"{uri} could not be read as a video ({err})") from err


class SequenceMask:
    """Mask i for input frame i, from a mask video or numbered frames (see the module doc).

    Frames must be asked for in order (``first_index`` = the number already used), as a render
    stylizes them; the mask source is opened with the input's start, duration and frame rate so
    both are cut the same way.
    """

    def __init__(
        self,
        uri: str,
        *,
        invert: bool = False,
        start_s: float = 0.0,
        duration_s: float | None = None,
        fps: float | None = None,
    ) -> None:
        self.uri = uri
        self.invert = invert
        try:
            self._source = open_source(
                uri,
                start_s=start_s,
                duration_s=duration_s,
                fps=fps if is_image_sequence(uri) else None,
            )
            self._source.open()
        except SourceNotFoundError as err:
            raise MaskNotFoundError(f"mask {uri}: {err}") from err
        except SourceError as err:
            raise MaskError(f"mask {uri}: {err}") from err
        self._frames: Iterator[Frame] = iter(self._source)
        self.used = 0

    def close(self) -> None:
        self._source.close()

    def _next(self) -> Tensor:
        try:
            frame = next(self._frames)
        except StopIteration:
            self.close()
            raise MaskError(
                f"mask {self.uri} has {self.used} frames but the input has more (frame "
                f"{self.used} needs mask {self.used}): give a mask with one frame per input frame"
            ) from None
        except SourceError as err:
            raise MaskError(f"mask {self.uri}: {err}") from err
        self.used += 1
        return _luma(frame.image)

    def __call__(self, content: Tensor, first_index: int) -> Tensor:
        if first_index != self.used:
            raise MaskError(
                f"mask {self.uri} follows the input frame by frame, but frame {first_index} "
                f"came after {self.used} frames (a live source that drops frames cannot use a "
                "mask sequence; use a still mask or a chroma key)"
            )
        masks = torch.stack([self._next() for _ in range(content.shape[0])]).unsqueeze(1)
        masks = resize_to(masks.to(content.device), tuple(content.shape[-2:]))
        return 1.0 - masks if self.invert else masks


def check_same_length(mask_uri: str, input_uri: str) -> None:
    """Refuse a mask sequence whose frame count differs from the input's, before anything is
    written (both counted in full; inputs without a count are checked while rendering)."""
    masks = count_frames(mask_uri)
    try:
        frames = count_frames(input_uri)
    except (MaskError, MaskNotFoundError):
        return  # the input's own opener reports a bad input
    if masks is not None and frames is not None and masks != frames:
        raise MaskError(
            f"mask {mask_uri} has {masks} frames but the input {input_uri} has {frames}: "
            "frame i uses mask i, so give one mask frame per input frame"
        )


def parse_key_colour(text: str) -> tuple[int, int, int]:
    """``green``, ``blue``, ``#RRGGBB`` or ``RRGGBB`` -> (r, g, b)."""
    name = text.strip().lower()
    if name in KEY_COLOURS:
        return KEY_COLOURS[name]
    match = re.fullmatch(r"#?([0-9a-f]{6})", name)
    if not match:
        raise MaskError(
            f"key colour {text!r}: expected {', '.join(KEY_COLOURS)} or #RRGGBB (e.g. #00b140)"
        )
    value = match.group(1)
    return int(value[0:2], 16), int(value[2:4], 16), int(value[4:6], 16)


@dataclass
class ChromaKeyMask:
    """The region is where the frame shows the key colour (see the module docstring)."""

    colour: tuple[int, int, int]
    tolerance: float = 30.0
    softness: float = 10.0
    invert: bool = False

    def __post_init__(self) -> None:
        if any(not 0 <= c <= 255 for c in self.colour):
            raise MaskError(f"key colour must be 0..255 per channel, got {self.colour}")
        if self.tolerance < 0 or self.softness < 0:
            raise MaskError(
                f"key tolerance and softness must be >= 0, got {self.tolerance}, {self.softness}"
            )

    def __call__(self, content: Tensor, first_index: int) -> Tensor:
        from kornia.color import rgb_to_lab

        key = torch.tensor(self.colour, dtype=torch.float32, device=content.device) / 255.0
        key_lab = rgb_to_lab(key.view(1, 3, 1, 1))
        lab = rgb_to_lab(content.float())
        # chroma relative to lightness: a shadow on the key scales a* and b* with L*
        scale = key_lab[:, :1].clamp(min=MIN_LIGHTNESS) / lab[:, :1].clamp(min=MIN_LIGHTNESS)
        distance = (lab[:, 1:] * scale - key_lab[:, 1:]).norm(dim=1, keepdim=True)
        if self.softness > 0:
            mask = ((self.tolerance + self.softness - distance) / self.softness).clamp_(0.0, 1.0)
        else:
            mask = (distance <= self.tolerance).float()
        return 1.0 - mask if self.invert else mask
