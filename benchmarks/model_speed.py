"""Per-frame cost of the published formulation against ours, measured in one process.

* published: :meth:`StyleTransferModel.forward_reference`, i.e. the style re-encoded for every
  frame and the quadratic (Nc x Ns) attention, in float32 and the default memory layout, as the
  reference code runs it.
* ours: :meth:`StyleTransferModel.encode_style` once per style (timed separately) and
  :meth:`StyleTransferModel.stylize` per frame (linear-time cosine attention for the video model),
  channels-last, at each requested precision.
* conv-only: encoder + decoder without attention: the floor both forms share.

Random weights (speed does not depend on their values). Numbers, not a pass/fail test: the
command line prints them as a table (``stylestream bench model``).
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from functools import partial

import torch
from torch import Tensor

from adaattn_video.config import VARIANTS, ModelConfig
from adaattn_video.exact_fp32 import tf32_setting
from adaattn_video.model import ImageAdaAttN, StyleTransferModel, build_model
from adaattn_video.settings import PRECISIONS, resolve_device
from benchmarks.timing import CLOCKS, Timing, markdown_table, time_interleaved

log = logging.getLogger(__name__)

Size = tuple[int, int]  # (height, width)


@dataclass(frozen=True)
class ModelBenchConfig:
    """What to measure.

    Attributes:
        sizes: content sizes (H, W) measured on every device.
        style_size: side of the square style image of the main comparison.
        large_style_size: a larger style for "ours" only: its cost must not depend on it.
        repeats: timed frames per measurement (best and median reported); warmup frames first.
        device: "cpu", "cuda", "cuda:1"...; "auto" = CUDA when available, else CPU.
        precisions: "fp32", "fp16" and/or "bf16" for our convolutions on ``device`` (the
            published form always runs in fp32).
        gpu_sizes: extra content sizes measured only on CUDA (720p and 1080p by default).
        gpu_precision: precision of the ``gpu_sizes`` rows.
        reference: also time the published formulation (slow on CPU).
        variant: "video" (cosine, the default model) or "image" (softmax at three levels).
        clock: "wall" (elapsed time, the default) or "cpu" (CPU time of this process: on a
            machine busy with other work, run with one thread, ``OMP_NUM_THREADS=1``, and the
            forms' ratios no longer depend on how often the scheduler pauses this process).
    """

    sizes: tuple[Size, ...] = ((256, 512), (360, 640))
    style_size: int = 512
    large_style_size: int | None = 1024
    repeats: int = 3
    warmup: int = 1
    device: str = "auto"
    precisions: tuple[str, ...] = ("fp32",)
    gpu_sizes: tuple[Size, ...] = ((720, 1280), (1080, 1920))
    gpu_precision: str = "fp16"
    reference: bool = True
    variant: str = "video"
    clock: str = "wall"

    def __post_init__(self) -> None:
        for size in (*self.sizes, *self.gpu_sizes):
            if len(size) != 2 or min(size) < 16:
                raise ValueError(f"sizes must be (height, width) with sides >= 16, got {size}")
        if self.style_size < 16 or (
            self.large_style_size is not None and self.large_style_size < 16
        ):
            raise ValueError(
                f"style sizes must be >= 16, got {self.style_size} and {self.large_style_size}"
            )
        if self.repeats < 1 or self.warmup < 0:
            raise ValueError(
                f"expected repeats >= 1 and warmup >= 0, got {self.repeats}, {self.warmup}"
            )
        for precision in (*self.precisions, self.gpu_precision):
            if precision not in PRECISIONS:
                raise ValueError(
                    f"precision must be one of {sorted(PRECISIONS)}, got {precision!r}"
                )
        if self.clock not in CLOCKS:
            raise ValueError(f"clock must be one of {sorted(CLOCKS)}, got {self.clock!r}")
        if self.variant not in VARIANTS:
            raise ValueError(f"variant must be one of {VARIANTS}, got {self.variant!r}")


@dataclass(frozen=True)
class BenchRow:
    """One measurement: the best (``ms``) and median per-frame (or per-style) time in
    milliseconds. The best of several runs is the least disturbed by other processes (the
    advice of :mod:`timeit`); ratios use it."""

    device: str
    precision: str
    content: Size | None  # (height, width); None for the once-per-style rows
    style: int | None
    form: str  # "published", "ours", "conv-only", "style encode (once)"
    ms: float | None  # None: out of memory
    median_ms: float | None
    peak_mib: float | None = None  # CUDA only: peak allocated (live tensors)
    note: str = ""
    peak_reserved_mib: float | None = None  # CUDA only: with the allocator's cached free blocks


@dataclass
class BenchResult:
    config: dict
    environment: dict
    rows: list[BenchRow] = field(default_factory=list)
    summary: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {
            "config": self.config,
            "environment": self.environment,
            "rows": [asdict(r) for r in self.rows],
            "summary": self.summary,
        }


def _round_up(size: Size, multiple: int) -> Size:
    return (-(-size[0] // multiple) * multiple, -(-size[1] // multiple) * multiple)


def _timings(
    forms: dict[str, Callable[[], object]], device: torch.device, config: ModelBenchConfig,
    warmup: int,
) -> dict[str, Timing]:  # fmt: skip
    """:func:`~benchmarks.timing.time_interleaved` with the config's repeats and clock."""
    return time_interleaved(
        forms, device, repeats=config.repeats, warmup=warmup, clock=CLOCKS[config.clock],
        collect_garbage=True,
    )  # fmt: skip


def _row(
    dev: str, precision: str, size: Size | None, side: int | None, form: str, timing: Timing,
    note: str = "",
) -> BenchRow:  # fmt: skip
    failed = timing.out_of_memory  # no time, no peak
    return BenchRow(
        dev, precision, size, side, form, timing.best_ms, timing.median_ms,
        None if failed else timing.peak_allocated_mib, note,
        None if failed else timing.peak_reserved_mib,
    )  # fmt: skip


def _conv_only(model: StyleTransferModel, content: Tensor) -> Tensor:
    """Encoder + decoder, no attention (what both forms pay regardless of the attention)."""
    taps = model.encoder(model._encoder_input(content))
    if isinstance(model, ImageAdaAttN):
        return model.decoder(model._input(taps["relu4_1"]), model._input(taps["relu3_1"]))
    return model.decoder(model._input(taps["relu3_1"]))


def _random_model(variant: str) -> StyleTransferModel:
    config = ModelConfig(variant=variant, attention="cosine" if variant == "video" else "softmax")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        return build_model(config).eval()


def _measure_device(
    model: StyleTransferModel,
    device: torch.device,
    precisions: tuple[str, ...],
    sizes: tuple[Size, ...],
    config: ModelBenchConfig,
    result: BenchResult,
) -> None:
    reference = copy.deepcopy(model).to(device).set_compute_dtype(torch.float32)
    generator = torch.Generator().manual_seed(0)
    dev = str(device)

    def image(h: int, w: int) -> Tensor:
        return torch.rand(1, 3, h, w, generator=generator).to(device)

    style_sides = [config.style_size] + (
        [config.large_style_size] if config.large_style_size else []
    )
    styles = {side: image(side, side) for side in style_sides}
    contents = {size: image(*_round_up(size, model.size_multiple)) for size in sizes}
    for index, precision in enumerate(precisions):
        model.to(device).set_compute_dtype(PRECISIONS[precision], channels_last=True)
        states = {}
        encodes = {side: partial(model.encode_style, style) for side, style in styles.items()}
        for side, timing in _timings(encodes, device, config, warmup=1).items():
            result.rows.append(_row(dev, precision, None, side, "style encode (once)", timing))
            if timing.out_of_memory:
                continue  # out of memory: no "ours" row for this style
            with torch.inference_mode():
                states[side] = model.encode_style(styles[side])
        for requested, content in contents.items():
            size = tuple(content.shape[-2:])
            note = "" if size == requested else f"rounded up from {requested[1]}x{requested[0]}"
            forms: dict[str, Callable[[], object]] = {}
            labels: dict[str, tuple[str, str, int | None]] = {}
            if config.reference and index == 0:  # once per size, interleaved with the first
                style = styles[config.style_size]
                forms["published"] = partial(reference.forward_reference, content, style)
                labels["published"] = ("published", "fp32", config.style_size)
            for side in states:
                forms[f"ours {side}"] = partial(model.stylize, content, [states[side]])
                labels[f"ours {side}"] = ("ours", precision, side)
            forms["conv-only"] = partial(_conv_only, model, content)
            labels["conv-only"] = ("conv-only", precision, None)
            for name, timing in _timings(forms, device, config, config.warmup).items():
                form, row_precision, side = labels[name]
                result.rows.append(_row(dev, row_precision, size, side, form, timing, note))
                log.info(
                    "%s %s %s %s (style %s): %s ms",
                    dev, row_precision, size, form, side, timing.best_ms,
                )  # fmt: skip


def _summarise(result: BenchResult, config: ModelBenchConfig) -> None:
    def find(device: str, precision: str, size: Size, style: int | None, form: str):
        for row in result.rows:
            if (row.device, row.precision, row.content, row.style, row.form) == (
                device,
                precision,
                size,
                style,
                form,
            ):
                return row.ms
        return None

    keys = {
        (r.device, r.precision, r.content) for r in result.rows if r.form == "ours" and r.content
    }
    for device, precision, size in sorted(keys):
        label = f"{device} {precision} {size[1]}x{size[0]}"
        ours = find(device, precision, size, config.style_size, "ours")
        published = find(device, "fp32", size, config.style_size, "published")
        if ours and published:
            result.summary[f"speedup {label}"] = published / ours
        if config.large_style_size:
            large = find(device, precision, size, config.large_style_size, "ours")
            if ours and large:
                result.summary[
                    f"style {config.large_style_size}/{config.style_size} time ratio {label}"
                ] = large / ours


def run_model_benchmark(config: ModelBenchConfig | None = None) -> BenchResult:
    """Measure every row of the table (see the module docstring)."""
    config = config or ModelBenchConfig()
    device = torch.device(resolve_device(config.device))  # one resolver for every command
    environment = {
        "torch": torch.__version__,
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "cpu_threads": torch.get_num_threads(),
        "fp32": tf32_setting(),  # CUDA's "fp32" rows are TF32 convolutions unless this says IEEE
    }
    config_dict = asdict(config)
    config_dict["device"] = str(device)
    result = BenchResult(config_dict, environment)
    model = _random_model(config.variant)
    _measure_device(model, device, config.precisions, config.sizes, config, result)
    if device.type == "cuda" and config.gpu_sizes:
        _measure_device(model, device, (config.gpu_precision,), config.gpu_sizes, config, result)
    _summarise(result, config)
    return result


def format_table(result: BenchResult) -> str:
    """A plain-text table (also valid Markdown) of every row and the summary ratios."""
    by_key = {
        (r.device, r.content): r.ms
        for r in result.rows
        if r.form == "published" and r.style == result.config["style_size"]
    }
    header = [
        "device",
        "precision",
        "content (WxH)",
        "style",
        "form",
        "best ms",
        "median ms",
        "vs published",
        "peak MiB (reserved)",
    ]
    lines = []
    for row in result.rows:
        published = by_key.get((row.device, row.content))
        ratio = (
            f"{published / row.ms:.1f}x faster"
            if published and row.ms and row.form in ("ours", "conv-only")
            else ""
        )
        lines.append(
            [
                row.device,
                row.precision,
                f"{row.content[1]}x{row.content[0]}" if row.content else "-",
                f"{row.style}x{row.style}" if row.style else "-",
                row.form + (f" ({row.note})" if row.note else ""),
                "OOM" if row.ms is None else f"{row.ms:.1f}",
                "" if row.median_ms is None else f"{row.median_ms:.1f}",
                ratio,
                _peak_cell(row),
            ]
        )
    env = result.environment
    text = [
        f"model: {result.config['variant']} (random weights); torch {env['torch']} on "
        f"{env['device']} ({env['cpu_threads']} CPU threads, {env.get('fp32', '?')}), "
        f"{result.config['repeats']} timed rounds after {result.config['warmup']} warm-up, "
        f"{result.config['clock']} clock",
        "published = style re-encoded and quadratic attention every frame; ours = style "
        "encoded once, then per frame; ratios use the best time",
        markdown_table(header, lines),
    ]
    for name, value in result.summary.items():
        text.append(f"{name}: {value:.2f}")
    return "\n".join(text)


def _peak_cell(row: BenchRow) -> str:
    """``allocated (reserved)`` MiB: reserved adds the allocator's cached free blocks."""
    if row.peak_mib is None:
        return ""
    reserved = "" if row.peak_reserved_mib is None else f" ({row.peak_reserved_mib:.0f})"
    return f"{row.peak_mib:.0f}{reserved}"
