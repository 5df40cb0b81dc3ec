"""``bench render``: how much of decode and encode the pipeline hides behind the model.

One clip (the demo pan/zoom, H.264 + AAC, written to a temp folder first) is rendered twice in
the same process with the same stylizer, after a warm-up batch:

(a) stage by stage: decode every frame, then stylize them all, then encode them all;
(b) pipelined: :class:`streamer.pipeline.Pipeline` (the code ``stylestream render`` runs).

Printed: fps of each, the model-only fps (frames / time in the stylizer in (a)), and the overlap
efficiency = pipelined fps / model-only fps (1.0 = decode and encode completely hidden).
On a machine with few cores the decode/encode threads compete with the model for CPU, which is
exactly what this number shows. (a) and (b) alternate ``repeat`` times and the fastest run of
each counts (the least disturbed by other load); "model busy in (b)" (the model's share of the
pipelined run's own wall time) does not depend on load changing between runs at all.
"""

from __future__ import annotations

import dataclasses
import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch

from adaattn_video.assets import DEFAULT_STYLE
from adaattn_video.settings import StylizerSpec, resolve_device
from benchmarks.timing import Stopwatch, synchronize
from configkit.convert import to_mapping
from streamer.batch_runner import BatchRunner
from streamer.demo import make_demo_clip
from streamer.pipeline import Pipeline, PipelineConfig
from streamer.render import RenderConfig, build_stylizer
from streamer.sinks.mp4 import Mp4Sink, Mp4SinkConfig, VideoEncoderConfig
from streamer.sources.file import FileSource, FileSourceConfig


@dataclass(frozen=True)
class RenderBenchConfig:
    size: tuple[int, int] = (360, 640)  # (height, width)
    frames: int = 8
    repeat: int = 3  # (a) and (b) alternate this many times; the fastest of each counts
    batch_size: int = 0  # 0: 4 on CUDA, 1 on CPU
    # the model: random weights unless given (speed does not depend on them); the style is
    # the bundled one unless given
    stylizer: StylizerSpec = StylizerSpec(untrained=True, style_size=256)
    codec: str = "libx264"
    preset: str = "veryfast"
    fps: int = 24

    def __post_init__(self) -> None:
        if self.frames < 2:
            raise ValueError(f"frames must be >= 2, got {self.frames}")
        if self.repeat < 1:
            raise ValueError(f"repeat must be >= 1, got {self.repeat}")
        if len(self.size) != 2 or min(self.size) < 16 or self.size[0] % 2 or self.size[1] % 2:
            raise ValueError(f"size must be even (height, width) >= 16, got {self.size}")


@dataclass(frozen=True)
class RenderBenchResult:
    config: RenderBenchConfig
    device: str
    precision: str
    batch_size: int
    threads: int
    frames: int
    sequential_s: dict[str, float]  # decode, stylize, encode (fastest repeat)
    model_s: float  # fastest stylize-only time over the repeats
    pipelined_s: float  # fastest pipelined run
    pipelined_stage_busy_s: dict[str, float]

    @property
    def sequential_fps(self) -> float:
        return self.frames / sum(self.sequential_s.values())

    @property
    def model_fps(self) -> float:
        return self.frames / self.model_s

    @property
    def pipelined_fps(self) -> float:
        return self.frames / self.pipelined_s

    @property
    def efficiency(self) -> float:
        return self.pipelined_fps / self.model_fps

    @property
    def model_busy_fraction(self) -> float:
        """Share of the pipelined run's wall time the model was working (same run, so immune
        to load changing between runs)."""
        return self.pipelined_stage_busy_s["stylize"] / self.pipelined_s

    def table(self) -> str:
        h, w = self.config.size
        seq = self.sequential_s
        lines = [
            f"bench render: {self.frames} frames {w}x{h}, best of {self.config.repeat}, "
            f"device {self.device} "
            f"({self.precision}, batch {self.batch_size}, {self.threads} torch threads, "
            f"{os.cpu_count()} cores)",
            f"  (a) stage by stage : {self.sequential_fps:7.2f} fps   "
            f"(decode {seq['decode']:.2f} s, stylize {seq['stylize']:.2f} s, "
            f"encode {seq['encode']:.2f} s)",
            f"  (b) pipelined      : {self.pipelined_fps:7.2f} fps   "
            f"({self.pipelined_s:.2f} s; busy "
            + ", ".join(f"{k} {v:.2f} s" for k, v in self.pipelined_stage_busy_s.items())
            + ")",
            f"  model only         : {self.model_fps:7.2f} fps",
            f"  overlap efficiency : {self.efficiency:7.3f}   (pipelined fps / model-only fps)",
            f"  model busy in (b)  : {self.model_busy_fraction:7.3f}   (stylize time / wall time)",
            f"  pipelined speed-up : {self.pipelined_fps / self.sequential_fps:7.3f}x over stage by stage",
        ]
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["config"].pop("stylizer")
        data["config"].update(to_mapping(self.config.stylizer))  # flat: device, precision, ...
        data["config"]["size"] = list(self.config.size)
        data.update(
            sequential_fps=self.sequential_fps,
            model_fps=self.model_fps,
            pipelined_fps=self.pipelined_fps,
            efficiency=self.efficiency,
        )
        return data


@dataclass(frozen=True)
class _Bench:
    """One benchmark run's fixed parts: the clip in ``folder``, the stylizer and its device."""

    config: RenderBenchConfig
    folder: Path
    stylizer: Any
    device: str
    batch_size: int

    @property
    def clip(self) -> Path:
        return self.folder / "clip.mp4"

    def source(self) -> FileSource:
        return FileSource(FileSourceConfig(str(self.clip)))

    def sink(self, name: str) -> Mp4Sink:
        encoder = VideoEncoderConfig(codec=self.config.codec, preset=self.config.preset)
        return Mp4Sink(
            Mp4SinkConfig(
                self.folder / name,
                encoder=encoder,
                frame_rate=self.config.fps,
                audio_from=self.clip,
                overwrite=True,
            )
        )

    def warm_up(self, runner: BatchRunner) -> None:
        """One batch through the model first: allocator, kernels, lazy init."""
        with self.source() as warm:
            first = next(iter(warm))
        runner.submit([first] * self.batch_size)
        runner.flush()
        synchronize(self.device)

    def stage_by_stage(self, runner: BatchRunner) -> tuple[dict[str, float], int]:
        """(a): decode everything, then stylize everything, then encode everything."""
        with Stopwatch() as decode, self.source() as src:
            decoded = list(src)
        with Stopwatch(self.device) as stylize:
            stylized = []
            for i in range(0, len(decoded), self.batch_size):
                stylized += runner.submit(decoded[i : i + self.batch_size])
            stylized += runner.flush()
        with Stopwatch() as encode, self.sink("sequential.mp4") as out:
            for frame in stylized:
                out.write(frame)
            out.end_of_stream()
        if len(stylized) != len(decoded):
            raise RuntimeError(f"stylized {len(stylized)} of {len(decoded)} frames")
        times = {"decode": decode.seconds, "stylize": stylize.seconds, "encode": encode.seconds}
        return times, len(decoded)

    def pipelined(self) -> tuple[float, dict[str, float], int]:
        """(b): the :class:`Pipeline` ``stylestream render`` runs."""
        batch = self.batch_size
        with Stopwatch(self.device) as watch:
            stats = Pipeline(
                self.source(),
                self.stylizer,
                [self.sink("pipelined.mp4")],
                PipelineConfig(batch_size=batch, max_queue_frames=max(8, 2 * batch)),
            ).run()
        return watch.seconds, dict(stats.stage_busy_s), stats.frames_out


def _build_stylizer(config: RenderBenchConfig, device: str) -> Any:
    styles = config.stylizer.styles or (str(DEFAULT_STYLE),)
    render_config = RenderConfig(
        input="-",
        output="-.mp4",
        stylizer=replace(config.stylizer, styles=styles, device=device),
    )
    return build_stylizer(render_config, device)


def run_render_benchmark(
    config: RenderBenchConfig, *, progress: Callable[[str], None] | None = None
) -> RenderBenchResult:
    say = progress or (lambda _msg: None)
    device = resolve_device(config.stylizer.device)
    batch_size = config.batch_size or (4 if device.startswith("cuda") else 1)
    stylizer = _build_stylizer(config, device)
    with tempfile.TemporaryDirectory(prefix="stylestream-bench-") as tmp:
        bench = _Bench(config, Path(tmp), stylizer, device, batch_size)
        say(f"making a {config.frames}-frame clip at {config.size[1]}x{config.size[0]} ...")
        make_demo_clip(
            bench.clip, size=config.size, fps=config.fps, seconds=config.frames / config.fps
        )
        runner = BatchRunner(stylizer)
        bench.warm_up(runner)
        runs_a, runs_b = [], []
        for r in range(config.repeat):  # alternate, so load changes hit both alike
            say(f"run {r + 1}/{config.repeat}: (a) stage by stage ...")
            runs_a.append(bench.stage_by_stage(runner))
            say(f"run {r + 1}/{config.repeat}: (b) pipelined ...")
            runs_b.append(bench.pipelined())
    times, frames = min(runs_a, key=lambda run: sum(run[0].values()))
    pipelined_s, busy, written = min(runs_b, key=lambda run: run[0])
    if written != frames:
        raise RuntimeError(f"pipelined run wrote {written} frames, expected {frames}")
    return RenderBenchResult(
        config=config,
        device=device,
        precision=stylizer.config.precision,
        batch_size=batch_size,
        threads=torch.get_num_threads(),
        frames=frames,
        sequential_s=times,
        model_s=min(run[0]["stylize"] for run in runs_a),
        pipelined_s=pipelined_s,
        pipelined_stage_busy_s=busy,
    )
