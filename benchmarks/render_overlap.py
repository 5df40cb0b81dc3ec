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
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch

from adaattn_video.assets import DEFAULT_STYLE
from adaattn_video.settings import StylizerSpec, resolve_device
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


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def run_render_benchmark(
    config: RenderBenchConfig, *, progress: Callable[[str], None] | None = None
) -> RenderBenchResult:
    say = progress or (lambda _msg: None)
    device = resolve_device(config.stylizer.device)
    batch_size = config.batch_size or (4 if device.startswith("cuda") else 1)
    render_config = RenderConfig(
        input="-",
        output="-.mp4",
        stylizer=replace(
            config.stylizer, styles=config.stylizer.styles or (str(DEFAULT_STYLE),), device=device
        ),
    )
    stylizer = build_stylizer(render_config, device)
    encoder = VideoEncoderConfig(codec=config.codec, preset=config.preset)
    with tempfile.TemporaryDirectory(prefix="stylestream-bench-") as tmp:
        clip = Path(tmp) / "clip.mp4"
        say(f"making a {config.frames}-frame clip at {config.size[1]}x{config.size[0]} ...")
        make_demo_clip(clip, size=config.size, fps=config.fps, seconds=config.frames / config.fps)

        def source() -> FileSource:
            return FileSource(FileSourceConfig(str(clip)))

        def sink(name: str) -> Mp4Sink:
            return Mp4Sink(
                Mp4SinkConfig(
                    Path(tmp) / name,
                    encoder=encoder,
                    frame_rate=config.fps,
                    audio_from=clip,
                    overwrite=True,
                )
            )

        runner = BatchRunner(stylizer)
        with source() as warm:  # warm-up: allocator, kernels, lazy init
            first = next(iter(warm))
        runner.submit([first] * batch_size)
        runner.flush()
        _sync(device)

        def stage_by_stage() -> tuple[dict[str, float], int]:
            times: dict[str, float] = {}
            started = time.perf_counter()
            with source() as src:
                decoded = list(src)
            times["decode"] = time.perf_counter() - started
            started = time.perf_counter()
            stylized = []
            for i in range(0, len(decoded), batch_size):
                stylized += runner.submit(decoded[i : i + batch_size])
            stylized += runner.flush()
            _sync(device)
            times["stylize"] = time.perf_counter() - started
            started = time.perf_counter()
            with sink("sequential.mp4") as out:
                for frame in stylized:
                    out.write(frame)
                out.end_of_stream()
            times["encode"] = time.perf_counter() - started
            if len(stylized) != len(decoded):
                raise RuntimeError(f"stylized {len(stylized)} of {len(decoded)} frames")
            return times, len(decoded)

        def pipelined() -> tuple[float, dict[str, float], int]:
            started = time.perf_counter()
            stats = Pipeline(
                source(),
                stylizer,
                [sink("pipelined.mp4")],
                PipelineConfig(batch_size=batch_size, max_queue_frames=max(8, 2 * batch_size)),
            ).run()
            return time.perf_counter() - started, dict(stats.stage_busy_s), stats.frames_out

        runs_a, runs_b = [], []
        for r in range(config.repeat):  # alternate, so load changes hit both alike
            say(f"run {r + 1}/{config.repeat}: (a) stage by stage ...")
            runs_a.append(stage_by_stage())
            say(f"run {r + 1}/{config.repeat}: (b) pipelined ...")
            runs_b.append(pipelined())
        times, frames = min(runs_a, key=lambda run: sum(run[0].values()))
        model_s = min(run[0]["stylize"] for run in runs_a)
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
        model_s=model_s,
        pipelined_s=pipelined_s,
        pipelined_stage_busy_s=busy,
    )
