"""``stylestream bench render`` and the "model" options every speed benchmark shares.

The ``bench`` group itself is a row of the command table (:mod:`streamer.cli.commands`); each
benchmark is a command with its own small config dataclass.
"""

from __future__ import annotations

from dataclasses import dataclass

from adaattn_video.settings import StylizerSpec
from configkit.checks import at_least, positive
from configkit.convert import option, option_like
from streamer.cli.ray_options import RayBenchOptions, run_ray_bench
from streamer.cli.reports import report_result
from streamer.cli.values import OptionValueError, format_wh, wh
from streamer.guard import guard_declared


@dataclass(frozen=True)
class SpeedModel:
    """model: the options of a speed benchmark (random weights unless --weights: speed does
    not depend on the weights; 256 px styles)."""

    weights: str | None = option_like(StylizerSpec, "weights", help="a .safetensors checkpoint "
                                      "(default: random weights)")  # fmt: skip
    untrained: bool = option_like(
        StylizerSpec, "untrained", help="random weights (the default here without --weights: "
        "speed does not depend on the weights)",
    )  # fmt: skip
    device: str = option_like(StylizerSpec, "device")
    precision: str = option_like(StylizerSpec, "precision")
    style_size: int | None = option_like(StylizerSpec, "style_size", 256)

    def spec(self) -> StylizerSpec:
        """The :class:`StylizerSpec` (``untrained`` unless ``weights`` is given)."""
        return StylizerSpec(
            weights=self.weights, untrained=self.weights is None, device=self.device,
            precision=self.precision, style_size=self.style_size,  # type: ignore[arg-type]
        )  # fmt: skip


# -- bench render ------------------------------------------------------------------------------
@dataclass(frozen=True)
class BenchRenderOptions:
    size: tuple[int, int] = option(
        (360, 640), "frame size of the clip", metavar="WxH", parse=wh,
        format=format_wh,
    )  # fmt: skip
    frames: int = option(8, "clip length", metavar="N", check=at_least(2))
    repeat: int = option(
        3, "alternate (a) and (b) this many times; the fastest of each counts", metavar="N",
        check=positive,
    )  # fmt: skip
    batch_size: int = option(0, "frames per model call (0: auto)", metavar="N", check=at_least(0))
    codec: str = option("libx264", "video encoder")
    preset: str = option("veryfast", "encoder speed preset")
    model: SpeedModel = option(SpeedModel(), flatten=True)
    json: str | None = option(None, "also write the numbers as JSON", metavar="FILE", role="output")
    ray: RayBenchOptions = option(RayBenchOptions(), flatten=True)
    config_file: str | None = option(None, cli=False, role="input")


def run_bench_render(args: BenchRenderOptions) -> int:
    guard_declared(args)  # --json never onto --weights
    from benchmarks.render_overlap import RenderBenchConfig, run_render_benchmark

    spec = args.model.spec()
    if args.ray.ray:
        return run_ray_bench(args.ray, args.size, spec, args.json)
    try:
        config = RenderBenchConfig(
            size=args.size, frames=args.frames, repeat=args.repeat, batch_size=args.batch_size,
            stylizer=spec, codec=args.codec, preset=args.preset,
        )  # fmt: skip
    except ValueError as err:
        raise OptionValueError(str(err)) from err
    result = run_render_benchmark(config, progress=print)
    return report_result(result, args.json)


# -- bench temporal / bench outputs ------------------------------------------------------------
@dataclass(frozen=True)
class BenchTemporalOptions:
    size: tuple[int, int] = option(
        (360, 640), "size of the pan + cut clip", metavar="WxH", parse=wh, format=format_wh
    )
    repeats: int = option(3, "every setting this many times in turn", metavar="N", check=positive)
    threads: int = option(2, "torch threads (CPU)", metavar="N", check=positive)
    json: str | None = option(None, "also write the rows as JSON", metavar="FILE", role="output")


def run_bench_temporal(args: BenchTemporalOptions) -> int:
    """Warping error, long-range error, PSNR vs per-frame and fps of every temporal setting on a
    clip of exactly known motion with a cut (docs/temporal.md)."""
    from benchmarks.temporal_modes import run_report, table
    from streamer.cli.reports import write_json_report

    guard_declared(args)
    rows = run_report(size=args.size, repeats=args.repeats, threads=args.threads)
    print(table(rows))
    if args.json:
        write_json_report(args.json, [row.to_dict() for row in rows])
    return 0


@dataclass(frozen=True)
class BenchOutputsOptions:
    seconds: float = option(6.0, "seconds of 30 fps video per output kind", metavar="S",
                            check=positive)  # fmt: skip
    json: str | None = option(None, "also write the numbers as JSON", metavar="FILE", role="output")


def run_bench_outputs(args: BenchOutputsOptions) -> int:
    """Frame-to-reader latency of every network output kind on loopback and the CPU cost of one
    720p output (docs/outputs.md); needs nginx-rtmp, srt-tools and GStreamer's RTSP server."""
    from benchmarks.output_latency import run_report
    from streamer.cli.reports import write_json_report

    guard_declared(args)
    report = run_report(args.seconds)
    if args.json:
        write_json_report(args.json, report)
    return 0
