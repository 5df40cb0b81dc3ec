"""Per-frame cost of regions: the plain frame against the same frame with R regions.

Both forms run in one process, taking turns, with random weights (speed does not depend on
their values): ``stylize`` with one style, and :func:`~adaattn_video.masked_attention.stylize_regions`
with R regions whose hard masks split the frame into vertical stripes (default style + R
region styles). Numbers, not a pass/fail test (``stylestream bench regions``).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch

from adaattn_video.config import IMAGE_MODEL, VIDEO_MODEL
from adaattn_video.masked_attention import stylize_regions
from adaattn_video.model import build_model, init_untrained_
from adaattn_video.stylizer import PRECISIONS
from benchmarks.timing import markdown_table, time_interleaved


@dataclass(frozen=True)
class RegionBenchConfig:
    """size (H, W) of the frame; regions R; style_size: side of the square styles; repeats:
    timed frames per form (best reported); device; precision of the convolutions; variant."""

    size: tuple[int, int] = (360, 640)
    regions: int = 2
    style_size: int = 256
    repeats: int = 3
    device: str = "cpu"
    precision: str = "fp32"
    variant: str = "video"

    def __post_init__(self) -> None:
        if self.regions < 1 or self.repeats < 1:
            raise ValueError(
                f"regions and repeats must be >= 1, got {self.regions}, {self.repeats}"
            )
        if self.precision not in PRECISIONS:
            raise ValueError(
                f"precision must be one of {sorted(PRECISIONS)}, got {self.precision!r}"
            )
        if self.variant not in ("video", "image"):
            raise ValueError(f"variant must be video or image, got {self.variant!r}")
        if min(self.size) < 32 or self.style_size < 32:
            raise ValueError(f"sizes must be >= 32 pixels, got {self.size}, {self.style_size}")


@dataclass(frozen=True)
class RegionBenchResult:
    config: RegionBenchConfig
    plain_ms: float
    regions_ms: float

    @property
    def ratio(self) -> float:
        return self.regions_ms / self.plain_ms

    def table(self) -> str:
        h, w = self.config.size
        c = self.config
        head = f"{w}x{h} {c.variant} {c.precision} on {c.device}, best of {c.repeats}"
        rows = [
            ["plain (1 style)", f"{self.plain_ms:.1f}", "1.00x"],
            [f"{c.regions} regions", f"{self.regions_ms:.1f}", f"{self.ratio:.2f}x"],
        ]
        return head + "\n" + markdown_table(["form", "ms / frame", "vs plain"], rows, pad=False)

    def to_dict(self) -> dict:
        return {**asdict(self), "ratio": self.ratio}


def run_region_benchmark(config: RegionBenchConfig) -> RegionBenchResult:
    device = torch.device(config.device)
    model = init_untrained_(build_model(VIDEO_MODEL if config.variant == "video" else IMAGE_MODEL))
    model = model.eval().to(device)
    model.set_compute_dtype(PRECISIONS[config.precision], channels_last=True)
    m = model.size_multiple
    h, w = (-(-side // m) * m for side in config.size)
    generator = torch.Generator().manual_seed(0)
    content = torch.rand(1, 3, h, w, generator=generator).to(device)
    side = -(-config.style_size // m) * m
    with torch.inference_mode():
        styles = [
            model.encode_style(torch.rand(1, 3, side, side, generator=generator).to(device))
            for _ in range(config.regions + 1)
        ]
    masks = torch.zeros(1, config.regions, h, w, device=device)
    stripe = w // config.regions
    for r in range(config.regions):
        masks[:, r, :, r * stripe : (r + 1) * stripe] = 1.0

    def plain() -> None:
        model.stylize(content, [styles[0]])

    def regions() -> None:
        stylize_regions(model, content, [styles[0]], [1.0], styles[1:], masks)

    timings = time_interleaved(  # taking turns: drift in machine load hits both
        {"plain": plain, "regions": regions}, device, repeats=config.repeats, warmup=1
    )
    return RegionBenchResult(
        config, min(timings["plain"].times_ms), min(timings["regions"].times_ms)
    )
