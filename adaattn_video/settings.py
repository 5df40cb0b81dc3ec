"""The settings of a stylizer, checked once: :class:`StylizerSpec`, the device and precision
resolvers, and the value checks every command shares.

Every command that stylizes (``image``, ``render``, ``live``, ``eval``, ``bench``) holds one
:class:`StylizerSpec`; ``train`` and ``eval`` resolve their device and precision with the same
:func:`resolve_device` / :func:`resolve_precision`, so ``auto`` means the same everywhere and an
unavailable device is the same one-line error everywhere. This module imports only torch.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal

import torch

from adaattn_video.errors import StylestreamError
from adaattn_video.resources import MAX_MEMORY_HELP, parse_memory
from configkit.convert import option

PRECISIONS: dict[str, torch.dtype] = {
    "fp32": torch.float32,
    "fp16": torch.float16,
    "bf16": torch.bfloat16,
}
PRECISION_CHOICES: tuple[str, ...] = ("auto", "fp32", "fp16", "bf16")
MIN_SIDE = 16
DEVICE_HELP = "cpu, cuda, cuda:N, mps or auto (cuda, then mps, then cpu)"
PRECISION_HELP = (
    "convolution precision (auto: fp16 on CUDA and MPS, bf16 on CPUs with native bf16, else fp32)"
)

Precision = Literal["auto", "fp32", "fp16", "bf16"]
ModelKind = Literal["video", "image"]


class StylizerSettingError(StylestreamError, ValueError):
    """A stylizer setting (device, precision, alpha, sizes, style weights) that cannot be used."""


# -- devices and precisions -------------------------------------------------------------------
_DEVICE = re.compile(r"(auto|cpu|mps|cuda)(?::(\d+))?")


def _mps_available() -> bool:
    backend = getattr(torch.backends, "mps", None)
    return bool(backend is not None and backend.is_available())


def check_device(device: Any) -> str:
    """The spelling of ``device`` checked (``auto``, ``cpu``, ``cuda``, ``cuda:N``, ``mps``);
    availability is checked by :func:`resolve_device`, when the device is about to be used."""
    text = str(device).strip().lower() if isinstance(device, str) else None
    match = _DEVICE.fullmatch(text or "")
    if match is None or (match.group(2) is not None and match.group(1) != "cuda"):
        raise StylizerSettingError(f"device must be {DEVICE_HELP}; got {device!r}")
    return text  # type: ignore[return-value]


def resolve_device(device: str) -> str:
    """``auto`` -> ``cuda`` when available, else ``mps`` when available, else ``cpu``; an
    explicit device that this machine does not have is a one-line :class:`StylizerSettingError`.
    """
    device = check_device(device)
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "mps" if _mps_available() else "cpu"
    kind, _, index = device.partition(":")
    if kind == "cuda":
        if not torch.cuda.is_available():
            raise StylizerSettingError(
                f"device {device!r}: CUDA is not available on this machine; use cpu or auto"
            )
        if index and int(index) >= torch.cuda.device_count():
            raise StylizerSettingError(
                f"device {device!r}: this process sees {torch.cuda.device_count()} CUDA "
                f"device(s) (cuda:0 ...){_visible_devices_hint()}; use one of them"
            )
    if kind == "mps" and not _mps_available():
        raise StylizerSettingError(
            f"device {device!r}: Apple MPS is not available on this machine; use cpu or auto"
        )
    return device


def _visible_devices_hint() -> str:
    """Why a process may see fewer GPUs than the machine has: CUDA_VISIBLE_DEVICES (set by
    Ray for its actors, by schedulers, or by hand) renumbers the visible ones from cuda:0."""
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is None:
        return ""
    return f", numbered from cuda:0 among CUDA_VISIBLE_DEVICES={visible!r}"


def cpu_has_fast_bf16() -> bool:
    """True when oneDNN runs bf16 natively here (AVX512-BF16 / AMX): then bf16 convolutions
    are 2-3x faster than fp32 on the CPU; elsewhere they are emulated and slower."""
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def resolve_precision(precision: str, device: str, *, training: bool = False) -> str:
    """``auto`` -> the precision for ``device`` (a resolved device: cpu, cuda[:N] or mps).

    Inference: fp16 on CUDA and MPS, bf16 on CPUs with native bf16, else fp32. Training
    (``training=True``): fp16 (with a GradScaler) on CUDA, fp32 elsewhere: bf16 gradients on a
    CPU would change the results of a run, and MPS has no GradScaler; explicit fp16 training
    needs CUDA. Any other explicit value is only checked.
    """
    if precision not in PRECISION_CHOICES:
        raise StylizerSettingError(
            f"precision must be one of {', '.join(PRECISION_CHOICES)}; got {precision!r}"
        )
    kind = str(device).split(":")[0]
    if training and precision == "fp16" and kind != "cuda":
        raise StylizerSettingError(
            f"precision 'fp16' needs a CUDA device for training (its GradScaler is CUDA-only), "
            f"got {device}; use bf16 or fp32"
        )
    if precision != "auto":
        return precision
    if kind == "cuda":
        return "fp16"
    if training:
        return "fp32"
    if kind == "mps":
        return "fp16"
    return "bf16" if cpu_has_fast_bf16() else "fp32"


# -- values -----------------------------------------------------------------------------------
def check_alpha(alpha: Any) -> float:
    """Content strength: a finite number in [0, 1]."""
    try:
        value = float(alpha)
    except (TypeError, ValueError) as err:
        raise StylizerSettingError(f"alpha must be a number in [0, 1], got {alpha!r}") from err
    if not 0.0 <= value <= 1.0:  # also refuses NaN
        raise StylizerSettingError(f"alpha must be in [0, 1], got {alpha}")
    return value


def check_style_weights(weights: Sequence[float] | None, count: int) -> list[float]:
    """Normalised mixing weights for ``count`` styles (equal when None): finite, >= 0, with a
    positive sum; the one check for flags, YAML, the control endpoint and the Python API."""
    if weights is None:
        return [1.0 / count] * count
    try:
        values = [float(w) for w in weights]
    except (TypeError, ValueError) as err:
        raise StylizerSettingError(f"style weights must be numbers, got {weights!r}") from err
    if len(values) != count:
        raise StylizerSettingError(
            f"expected {count} style weights (one per style), got {len(values)}"
        )
    if not all(math.isfinite(w) and w >= 0 for w in values) or sum(values) <= 0:
        raise StylizerSettingError(
            f"style weights must be finite numbers >= 0 with a positive sum, got {values}"
        )
    total = sum(values)
    return [w / total for w in values]


_WH = re.compile(r"[ \t]*([0-9]{1,6})[ \t]*[xX][ \t]*([0-9]{1,6})[ \t]*")
_N = re.compile(r"[ \t]*([0-9]{1,6})[ \t]*")


def parse_wh(value: Any) -> tuple[int, int]:
    """``"WxH"`` (``640x360``) or ``[W, H]`` -> (height, width), sides >= 16."""
    try:
        if isinstance(value, (list, tuple)):
            if len(value) != 2 or any(isinstance(v, (bool, float)) for v in value):
                raise ValueError
            width, height = (int(v) for v in value)
        elif isinstance(value, str) and (match := _WH.fullmatch(value)):
            width, height = int(match.group(1)), int(match.group(2))
        else:
            raise ValueError
    except (TypeError, ValueError) as err:
        raise StylizerSettingError(f"expected WxH such as 640x360, got {value!r}") from err
    if min(width, height) < MIN_SIDE:
        raise StylizerSettingError(f"expected sides >= {MIN_SIDE} pixels, got {width}x{height}")
    return height, width


def parse_size(value: Any) -> int | tuple[int, int]:
    """``N`` (the longer side, aspect kept) or ``WxH`` / ``[W, H]`` -> N or (height, width)."""
    if isinstance(value, int) and not isinstance(value, bool):
        number = value
    elif isinstance(value, str) and (match := _N.fullmatch(value)):
        number = int(match.group(1))
    else:
        return parse_wh(value)
    if number < MIN_SIDE:
        raise StylizerSettingError(f"expected a size >= {MIN_SIDE} pixels, got {number}")
    return number


def parse_paths(value: Any) -> tuple[str, ...]:
    """One path or a list of paths (a YAML value or repeated flags) -> a tuple of strings."""
    items = [value] if isinstance(value, (str, Path)) else value
    if not isinstance(items, (list, tuple)) or not all(
        isinstance(v, (str, Path)) and str(v) for v in items
    ):
        raise StylizerSettingError(f"expected an image path or a list of them, got {value!r}")
    return tuple(str(v) for v in items)


def format_size(size: int | tuple[int, int]) -> int | str:
    """The inverse of :func:`parse_size`: N, or (height, width) -> ``"WxH"``."""
    return size if isinstance(size, int) else f"{size[1]}x{size[0]}"


def check_size(size: Any) -> None:
    """A stylizer's ``size``: None, N >= 16, or (height, width) with sides >= 16."""
    if size is None:
        return
    if isinstance(size, int) and not isinstance(size, bool):
        if size < MIN_SIDE:
            raise StylizerSettingError(f"size must be >= {MIN_SIDE} pixels, got {size}")
        return
    if not (
        isinstance(size, tuple)
        and len(size) == 2
        and all(isinstance(s, int) and not isinstance(s, bool) for s in size)
        and min(size) >= MIN_SIDE
    ):
        raise StylizerSettingError(
            f"size must be N or (height, width) with sides >= {MIN_SIDE}, got {size!r}"
        )


def check_style_size(style_size: Any) -> None:
    if style_size is not None and (
        not isinstance(style_size, int) or isinstance(style_size, bool) or style_size < MIN_SIDE
    ):
        raise StylizerSettingError(
            f"style_size must be >= {MIN_SIDE} pixels (or null for native size), got {style_size!r}"
        )


# -- the spec ---------------------------------------------------------------------------------
def output_size(size: int | tuple[int, int] | None, height: int, width: int) -> tuple[int, int]:
    """(height, width) a (height, width) frame is stylized at for a ``size`` setting: None =
    as it comes, ``(h, w)`` = exactly that, ``N`` = longer side N with the aspect kept."""
    if size is None:
        return height, width
    if isinstance(size, tuple):
        return size
    scale = size / max(height, width)
    return max(16, round(height * scale)), max(16, round(width * scale))


@dataclass(frozen=True)
class StylizerSpec:
    """Everything that decides how frames are stylized; every command's config holds one.

    ``device``/``precision`` may stay ``auto``: :meth:`resolved` (called when the stylizer is
    built) turns them into what this machine runs. YAML keys and flags are the ``flag`` names
    (``style``, ``style_weights``, ...).
    """

    styles: tuple[str, ...] = option(
        (), "style image; repeat to mix several (see --style-weights)", flag="style",
        metavar="IMAGE", parse=parse_paths, repeat=True, role="input",
    )  # fmt: skip
    style_weights: tuple[float, ...] | None = option(
        None, "one weight per --style (normalised to sum 1; default equal)", metavar="W"
    )
    weights: str | None = option(
        None, "a .safetensors checkpoint (default: the cached model, see `stylestream weights "
        "download`)", metavar="W", role="input",
    )  # fmt: skip
    untrained: bool = option(
        False, "random weights: output is NOT a stylization (smoke tests, benchmarks)"
    )
    model: ModelKind = option(
        "video", "which cached model to use without --weights (and which architecture "
        "--untrained builds): video or the published image model",
    )  # fmt: skip
    device: str = option("auto", DEVICE_HELP)
    precision: Precision = option("auto", PRECISION_HELP)
    alpha: float = option(1.0, "content strength 0..1 (1: full style)")
    style_size: int | None = option(
        512, "resize style images so the longer side is N pixels", metavar="N"
    )
    size: int | tuple[int, int] | None = option(
        None, "resize frames: N = longer side (aspect kept) or WIDTHxHEIGHT (default: as they "
        "come)", metavar="N|WxH", parse=parse_size, format=format_size,
    )  # fmt: skip
    max_memory: int | None = option(
        None, MAX_MEMORY_HELP, metavar="SIZE", parse=parse_memory
    )  # bytes one stylize call may take; None: what the machine has available

    def __post_init__(self) -> None:
        if isinstance(self.styles, (str, bytes)) or not all(
            isinstance(s, str) and s for s in self.styles
        ):
            raise StylizerSettingError(f"styles must be a list of image paths, got {self.styles!r}")
        if self.style_weights is not None:
            check_style_weights(self.style_weights, len(self.style_weights))
            if self.styles and len(self.style_weights) != len(self.styles):
                raise StylizerSettingError(
                    f"expected {len(self.styles)} style weights (one per --style), "
                    f"got {len(self.style_weights)}"
                )
        if self.untrained and self.weights is not None:
            raise StylizerSettingError("give either --weights or --untrained, not both")
        if self.model not in ("video", "image"):
            raise StylizerSettingError(f"model must be video or image, got {self.model!r}")
        check_device(self.device)
        if self.precision not in PRECISION_CHOICES:
            raise StylizerSettingError(
                f"precision must be one of {', '.join(PRECISION_CHOICES)}; got {self.precision!r}"
            )
        check_alpha(self.alpha)
        check_style_size(self.style_size)
        check_size(self.size)

    def require_styles(self) -> None:
        """Raise the one-line error of a command that got no ``--style``."""
        if not self.styles:
            raise StylizerSettingError("expected at least one --style image")

    def resolved(self) -> StylizerSpec:
        """A copy with ``device`` and ``precision`` resolved for this machine (one-line error
        when the device is not here)."""
        device = resolve_device(self.device)
        return replace(self, device=device, precision=resolve_precision(self.precision, device))


__all__ = [
    "DEVICE_HELP",
    "PRECISIONS",
    "PRECISION_CHOICES",
    "PRECISION_HELP",
    "StylizerSettingError",
    "StylizerSpec",
    "check_alpha",
    "check_device",
    "check_size",
    "check_style_weights",
    "cpu_has_fast_bf16",
    "format_size",
    "parse_paths",
    "parse_size",
    "parse_wh",
    "resolve_device",
    "resolve_precision",
]
