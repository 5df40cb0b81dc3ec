"""How much memory a stylize call needs, and a check against what the machine has -- before
anything is allocated, so ``--size 20000x20000`` is one error line instead of a 12 GB allocation
and a traceback.

The estimate follows the architecture (:mod:`adaattn_video.encoder`, :mod:`~.decoder`,
:mod:`~.attention`) tensor by tensor, for content (B, 3, H, W) padded to the model's size
multiple, with ``e`` bytes per element of the convolution precision (4 fp32, 2 fp16/bf16):

* encoder: VGG-19 to relu3_1 (video) or relu5_1 (image), module by module. A module holds its
  input and output at once (``x = module(x)``); a reflection pad is its own tensor; every tap
  (relu1_1: 64 x H x W, relu2_1: 128 x H/2 x W/2, relu3_1: 256 x H/4 x W/4, ...) stays alive to
  the end of the call (keys, ``alpha``).
* keys: at each attention level the taps down to it, resized to its scale and normalized, in
  float32 (448 channels at 1/4 scale for relu3_1, 960 at 1/8, 1472 at 1/16), built part by part
  and concatenated (parts and result alive together). A frame of the cosine (video) model at
  inference builds no key: the normalisation is folded into the projection and the attention
  runs in blocks of positions, so only the resized shallower taps, one block's float32
  temporaries and the (B, N, C) result count.
* attention (float32, per position N of the level): cosine: the projected query and its unit
  vectors (2d), the fused ``baddbmm`` output (1 + 2C) and the moments (2C), then mean/std and
  the normalized content (about 6C); softmax: query/key/value padded to one head width plus
  one block of scores (at most 2**26 elements, see :data:`~adaattn_video.memory_walk.MAX_SCORES_PER_CALL`).
* decoder: module by module from the attention output, with the taps and keys still alive.
* around the model: the float32 content, its resized/padded copy and the compute-dtype copy,
  the output in float32 and uint8, and ``frames_in_flight`` uint8 frames held by the pipeline.

Encoding a style image runs the same encoder, keys and projections on the style (batch 1);
its result (cosine: d x (1 + 2C) floats; softmax: (d + C) x N_style floats per level) stays
resident for every frame.

The walk (:mod:`adaattn_video.memory_walk`) counts tensors, not allocator slack or the
convolution library's scratch space; that is what ``CALIBRATION`` covers. It was measured on CPU (the peak resident set of a fresh process,
reset with /proc/self/clear_refs, around one call); ``tests/test_resources.py`` repeats the
measurement and requires the estimate within 2x of it. The walk's peak times ``CALIBRATION``
is the estimate.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from adaattn_video.config import ModelConfig
from adaattn_video.errors import StylestreamError
from adaattn_video.memory_walk import LEVELS, decoder_walk, encode_walk, padded

# allocator slack and convolution scratch on top of the tensors the walk counts: the estimate
# (walk x 1.1) / measured peak RSS on CPU (2 threads) was 0.85-1.26 for frames (video 256..1280
# px fp32 and bf16, batch 1-2; image 256 px fp32) and 1.1-1.7 for encoding a style
CALIBRATION = 1.1
ELEMENT_BYTES = {"fp32": 4, "fp16": 2, "bf16": 2}
# a style image at its native size: RGB uint8 (decoder + tensor copy), float32, resized float32
STYLE_DECODE_BYTES_PER_PIXEL = 3 * 2 + 3 * 4 * 2
_UNITS = {"": 1, "b": 1, "k": 2**10, "m": 2**20, "g": 2**30, "t": 2**40}


MAX_MEMORY_HELP = (
    "most memory one stylize call may take, e.g. 8G or 512M (default: what is available: "
    "MemAvailable of /proc/meminfo, or the GPU's free memory)"
)


class MemoryLimitError(StylestreamError, MemoryError):
    """A stylize call would need more memory than the machine has (or ``--max-memory``)."""


class MemorySizeError(StylestreamError, ValueError):
    """A memory amount such as ``--max-memory 8G`` that cannot be read."""


@dataclass(frozen=True)
class MemoryEstimate:
    """Estimated peak bytes of stylizing (``frames``) and of encoding the styles (``style``);
    ``peak`` is the larger plus what stays resident (the encoded styles)."""

    frames: int
    style: int
    resident: int

    @property
    def peak(self) -> int:
        return max(self.frames, self.style) + self.resident


def format_bytes(count: float) -> str:
    for unit, size in (("TiB", 2**40), ("GiB", 2**30), ("MiB", 2**20)):
        if count >= size:
            return f"{count / size:.1f} {unit}"
    return f"{count / 2**10:.0f} KiB"


def parse_memory(value: str | int | float | None) -> int | None:
    """``8G``, ``512M``, ``1.5GiB``, ``2e9`` (bytes) -> bytes; None stays None."""
    if value is None:
        return None
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        number, unit = float(value), ""
    else:
        match = re.fullmatch(
            r"\s*([0-9]*\.?[0-9]+(?:e[0-9]+)?)\s*([kmgt]?)(?:i?b)?\s*", str(value).lower()
        )
        if not match:
            raise MemorySizeError(
                f"max-memory: expected an amount such as 8G, 512M or 1.5GiB, got {value!r}"
            )
        number, unit = float(match.group(1)), match.group(2)
    if not math.isfinite(number) or number <= 0:
        raise MemorySizeError(f"max-memory: expected a positive amount, got {value!r}")
    return int(number * _UNITS[unit])


def estimate_stylize_memory(
    config: ModelConfig,
    size: tuple[int, int],
    *,
    batch: int = 1,
    precision: str = "fp32",
    style_sizes: Sequence[tuple[int, int]] = (),
    frames_in_flight: int = 0,
    device: str = "cpu",
) -> MemoryEstimate:
    """Estimated peak bytes of ``FrameStylizer`` stylizing (batch, H, W) frames (``size`` =
    (height, width), the size frames are stylized at) with styles of ``style_sizes`` (after
    ``style_size`` resizing) on ``device`` (its attention block size), see the module
    docstring."""
    e = ELEMENT_BYTES[precision]
    normalised = config.encoder_family == "vgg_normalised"
    levels = ["relu3_1"] if config.variant == "video" else list(LEVELS)
    multiple = config.size_multiple
    h, w = padded(size, multiple)

    # around the model: float content + padded copy, output float + uint8 (+ permuted copy)
    frame_px = batch * h * w
    around = frame_px * (3 * 4 * 2 + 3 * 4 + 3 * 2) + frames_in_flight * h * w * 3

    def encode(b: int, hw: tuple[int, int], style_n: int, style: bool) -> tuple[int, int, int]:
        return encode_walk(
            b, hw, e, levels, normalised=normalised, attention=config.attention,
            style_positions=style_n, style=style, device=device,
        )  # fmt: skip

    # styles: encode (batch 1), then what every frame reuses
    style_peak = resident = 0
    largest_style_positions = 0
    for shape in style_sizes:
        sh, sw = padded(shape, multiple)
        enc_peak, after, _ = encode(1, (sh, sw), 1, True)
        style_peak = max(style_peak, sh * sw * 3 * 4 * 3 + max(enc_peak, after))
        for level in levels:
            c, d, div = LEVELS[level]
            n = -(-sh // div) * -(-sw // div)
            largest_style_positions = max(largest_style_positions, n)
            resident += d * (1 + 2 * c) * 4 if config.attention == "cosine" else (d + c) * n * 4

    enc_peak, attn_peak, kept = encode(batch, (h, w), largest_style_positions, False)
    # decoder input at 1/4 scale: the mixed attention output (float32) and its compute copy
    n4 = batch * (h // 4) * (w // 4)
    decoder_resident = kept + n4 * 256 * (4 * 2 + e)
    if config.variant == "image":
        n8 = batch * (h // 8) * (w // 8)
        decoder_resident += n8 * 512 * (4 * 3 + e) + n4 * 256 * 4  # merge and its upsample
    dec_peak = decoder_walk(batch, (h, w), e, decoder_resident)
    frames = around + max(enc_peak, attn_peak, dec_peak)
    return MemoryEstimate(
        frames=int(frames * CALIBRATION),
        style=int(style_peak * CALIBRATION),
        resident=int(resident),
    )


# -- what the machine has ---------------------------------------------------------------------
def available_memory(device: str = "cpu") -> tuple[int | None, str]:
    """Bytes a new allocation can get on ``device`` and where the number comes from; (None,
    reason) when it cannot be known (then nothing is refused unless ``--max-memory`` is set).

    CPU: ``MemAvailable`` of /proc/meminfo (the kernel's estimate of what can be allocated
    without swapping), else free + reclaimable pages from ``os.sysconf``. CUDA: the free bytes
    ``torch.cuda.mem_get_info`` reports."""
    if device.startswith("cuda"):
        import torch

        if not torch.cuda.is_available():
            return None, "CUDA is not available"
        free, _total = torch.cuda.mem_get_info(torch.device(device))
        return int(free), f"free memory of {device}"
    try:
        with open("/proc/meminfo", encoding="ascii") as handle:
            for line in handle:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024, "MemAvailable in /proc/meminfo"
    except (OSError, ValueError, IndexError):
        pass
    try:
        pages = os.sysconf("SC_AVPHYS_PAGES")
        page = os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, ValueError, OSError):
        return None, "no /proc/meminfo and no sysconf"
    if pages <= 0 or page <= 0:
        return None, "sysconf reports no free pages"
    return pages * page, "free physical pages (sysconf)"


def image_size(path: str | Path) -> tuple[int, int] | None:
    """(height, width) of an image file from its header (nothing decoded); None if unreadable
    (the reader reports that later with its own message)."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            width, height = image.size
    except (OSError, UnidentifiedImageError, ValueError, Image.DecompressionBombError):
        return None  # read_image refuses a decompression bomb with its own message
    return height, width


def scaled_style_size(size: tuple[int, int], style_size: int | None) -> tuple[int, int]:
    """The size a style image is encoded at (longer side ``style_size``, as the stylizer does)."""
    if style_size is None:
        return size
    h, w = size
    scale = style_size / max(h, w)
    return max(16, round(h * scale)), max(16, round(w * scale))


def check_stylize_memory(
    config: ModelConfig,
    size: tuple[int, int] | None,
    *,
    batch: int = 1,
    precision: str = "fp32",
    device: str = "cpu",
    styles: Sequence[str | Path] = (),
    style_size: int | None = None,
    max_memory: int | None = None,
    frames_in_flight: int = 0,
) -> MemoryEstimate | None:
    """Refuse a stylize setting that cannot fit, before anything is allocated.

    ``size``: (height, width) frames are stylized at (None: unknown yet, only the styles are
    checked). ``styles``: style image paths (their sizes are read from the file headers and
    scaled to ``style_size``). The limit is ``max_memory`` when given, else what
    :func:`available_memory` reports for ``device``.

    Raises:
        MemoryLimitError: the estimate is above the limit; the message gives both.
    """
    style_sizes, natives = [], []
    for path in styles:
        native = image_size(path)
        if native is not None:
            natives.append(native)
            style_sizes.append(scaled_style_size(native, style_size))
    estimate = estimate_stylize_memory(
        config,
        size if size is not None else (16, 16),
        batch=batch,
        precision=precision,
        style_sizes=style_sizes,
        frames_in_flight=frames_in_flight,
        device=device,
    )
    if natives:  # a style is decoded and made float at its native size before it is resized
        decode = max(h * w for h, w in natives) * STYLE_DECODE_BYTES_PER_PIXEL
        estimate = replace(estimate, style=max(estimate.style, int(decode * CALIBRATION)))
        style_sizes = natives if decode * CALIBRATION >= estimate.style else style_sizes
    if max_memory is not None:
        limit, source = max_memory, "--max-memory"
    else:
        limit, source = available_memory(device)
        if limit is None:
            return estimate
    if estimate.peak <= limit:
        return estimate
    what = []
    if size is not None:
        what.append(f"frames of {size[1]}x{size[0]} (batch {batch}, {precision})")
    if style_sizes:
        biggest = max(style_sizes, key=lambda s: s[0] * s[1])
        what.append(f"a style of {biggest[1]}x{biggest[0]}")
    raise MemoryLimitError(
        f"stylizing {' and '.join(what)} needs about {format_bytes(estimate.peak)} of memory, "
        f"more than the {format_bytes(limit)} limit ({source}); use a smaller --size, "
        "--style-size, --batch-size or style image, or set the limit with --max-memory "
        "(e.g. --max-memory 8G)"
    )


def model_config_for(
    weights: str | Path | None, *, untrained: bool = False, default: ModelConfig | None = None
) -> ModelConfig:
    """The architecture ``weights`` holds, from the safetensors header only (nothing loaded);
    ``default`` (the video model) without weights or when the header cannot say (loading the
    file reports that properly later)."""
    from adaattn_video.config import VIDEO_MODEL

    fallback = default or VIDEO_MODEL
    if untrained or weights is None:
        if weights is None and not untrained:
            from adaattn_video.checkpoint import default_checkpoint

            weights = default_checkpoint()
        else:
            return fallback
    try:
        from safetensors import safe_open

        with safe_open(str(weights), framework="pt") as handle:
            text = (handle.metadata() or {}).get("model_config")
        return ModelConfig.from_json(text) if text else fallback
    except Exception:  # any unreadable header: loading the file gives the real error
        return fallback


def check_stylizer_memory(
    *,
    size: tuple[int, int] | None,
    styles: Sequence[str | Path],
    style_size: int | None,
    batch: int = 1,
    precision: str = "auto",
    device: str = "auto",
    weights: str | Path | None = None,
    untrained: bool = False,
    model: ModelConfig | None = None,
    max_memory: int | str | None = None,
    frames_in_flight: int = 0,
) -> MemoryEstimate | None:
    """:func:`check_stylize_memory` with a command's own settings (``auto`` device and
    precision resolved as the stylizer resolves them, the architecture read from ``weights``
    unless ``model`` is given). What ``render``, ``live`` and ``image`` call before loading
    the model."""
    from adaattn_video.settings import resolve_device, resolve_precision

    device = resolve_device(device)
    return check_stylize_memory(
        model or model_config_for(weights, untrained=untrained),
        size,
        batch=batch,
        precision=resolve_precision(precision, device),
        device=device,
        styles=[s for s in styles if isinstance(s, (str, Path))],
        style_size=style_size,
        max_memory=parse_memory(max_memory),
        frames_in_flight=frames_in_flight,
    )
