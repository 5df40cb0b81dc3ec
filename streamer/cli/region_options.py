"""``--region`` / ``--uncovered`` options of ``image`` and ``render``, and ``bench regions``.

A region on the command line is ``KEY=VALUE`` pairs separated by commas::

    --region style=wave.jpg,mask=person.png --region style=udnie.jpg,mask=person.png,invert=1

and in a ``--config`` YAML file a list under ``region:`` of the same strings or of mappings::

    region:
      - {style: wave.jpg, mask: person.png}
      - {style: udnie.jpg, mask: person.png, invert: true}

Keys: ``style`` (required), ``mask`` (picture / mask video / frames) or ``key`` (chroma-key
colour), ``tolerance``, ``softness``, ``invert``, ``style_mask``. Every mistake is one line.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from configkit.checks import positive
from configkit.convert import option
from streamer.cli.reports import report_result
from streamer.cli.values import OptionValueError, format_wh, items, wh
from streamer.guard import guard_declared
from streamer.regions.specs import RegionPlan, parse_region, parse_regions, region_from_mapping

__all__ = [
    "RegionOptions",
    "parse_region",
    "parse_regions",
    "region_from_mapping",
    "with_region_styles",
]


@dataclass(frozen=True)
class RegionOptions:
    """``--region`` (repeatable) and ``--uncovered`` of ``image``, ``render`` and ``live``."""

    region: tuple[Any, ...] = option(
        (), "a style for one region: mask=PNG (white = region), a mask video or frames in step "
        "with the input, or key=green|blue|#RRGGBB (chroma key; tolerance=, softness=); "
        "style_mask=PNG uses part of the style; repeat for more regions",
        metavar="style=IMG,mask=FILE[,invert=1]", parse=items, repeat=True, role="declared",
    )  # fmt: skip
    uncovered: Literal["style", "content"] = option(
        "style", "positions covered by no region: style (--style, or the first region's "
        "style) or content (left unstylized)",
    )  # fmt: skip

    def io_paths(self) -> tuple[list[str], list[str]]:
        """The files the regions read (styles, style masks, masks): inputs of the guard."""
        return [p for spec in parse_regions(list(self.region)) for p in spec.paths], []

    def plan(self, *, input_uri: str | None = None, sequences: bool = True) -> RegionPlan | None:
        """The checked :class:`RegionPlan`, or None without regions. Reads every mask and style
        file now (one-line errors before anything loads)."""
        specs = parse_regions(list(self.region))
        if not specs:
            return None
        plan = RegionPlan(specs, self.uncovered)
        plan.check(input_uri=input_uri, sequences=sequences)
        return plan


def with_region_styles(data: dict[str, Any]) -> dict[str, Any]:
    """A ``prepare`` step: with regions and no ``style``, the first region's style is the
    style of uncovered positions."""
    if data.get("region") and not data.get("style"):
        specs = parse_regions(list(items(data["region"])))
        if specs:
            data = {**data, "style": list(RegionPlan(specs, "style").default_styles)}
    return data


# -- bench regions ----------------------------------------------------------------------------
@dataclass(frozen=True)
class BenchRegionsOptions:
    size: tuple[int, int] = option(
        (360, 640), "frame size", metavar="WxH", parse=wh, format=format_wh
    )
    regions: int = option(2, "regions", metavar="N", check=positive)
    style_size: int = option(256, "style side", metavar="N", check=positive)
    repeats: int = option(3, "timed frames (best of)", metavar="N", check=positive)
    device: str = option("auto", "cpu, cuda, cuda:N or auto")
    precision: Literal["bf16", "fp16", "fp32"] = option("fp32", "precision of the convolutions")
    variant: Literal["video", "image"] = option("video", "video or the published image model")
    json: str | None = option(None, "also write the result as JSON", metavar="FILE", role="output")


def run_bench_regions(args: BenchRegionsOptions) -> int:
    guard_declared(args)  # --json never onto an input
    from adaattn_video.stylizer import resolve_device
    from benchmarks.region_cost import RegionBenchConfig, run_region_benchmark

    try:
        config = RegionBenchConfig(
            size=args.size,
            regions=args.regions,
            style_size=args.style_size,
            repeats=args.repeats,
            device=resolve_device(args.device),
            precision=args.precision,
            variant=args.variant,
        )
    except ValueError as err:
        raise OptionValueError(str(err)) from err
    result = run_region_benchmark(config)
    return report_result(result, args.json)
