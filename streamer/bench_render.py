"""``bench render``: how much of decode and encode the pipeline hides behind the model.

One clip (the demo pan/zoom, H.264 + AAC, written to a temp folder first) is rendered twice in
the same process with the same stylizer, after a warm-up batch:

(a) stage by stage: decode every frame, then stylize them all, then encode them all;
(b) pipelined: :class:`streamer.pipeline.Pipeline` (the code ``stylestream render`` runs).

Printed: fps of each, the model-only fps (frames / time in the stylizer in (a)), and the overlap
efficiency = pipelined fps / model-only fps (1.0 = decode and encode completely hidden).
On a machine with few cores the decode/encode threads compete with the model for CPU, which is
exactly what this number shows.
"""

from __future__ import annotations

import dataclasses
import os
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from adaattn_video.assets import DEFAULT_STYLE
from streamer.demo import make_demo_clip
from streamer.pipeline import BatchRunner, Pipeline, PipelineConfig
from streamer.render import RenderConfig, build_stylizer, resolve_device
from streamer.sinks.mp4 import Mp4Sink, Mp4SinkConfig, VideoEncoderConfig
from streamer.sources.file import FileSource, FileSourceConfig


@dataclass(frozen=True)
class RenderBenchConfig:
    size: tuple[int, int] = (360, 640)  # (height, width)
    frames: int = 16
    batch_size: int = 0  # 0: 4 on CUDA, 1 on CPU
    device: str = "auto"
    precision: str = "auto"
    style_size: int = 256
    codec: str = "libx264"
    preset: str = "veryfast"
    weights: str | None = None  # None: untrained (speed does not depend on the weights)
    fps: int = 24

    def __post_init__(self) -> None:
        if self.frames < 2:
            raise ValueError(f"frames must be >= 2, got {self.frames}")
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
    sequential_s: dict[str, float]  # decode, stylize, encode
    pipelined_s: float
    pipelined_stage_busy_s: dict[str, float]

    @property
    def sequential_fps(self) -> float:
        return self.frames / sum(self.sequential_s.values())

    @property
    def model_fps(self) -> float:
        return self.frames / self.sequential_s["stylize"]

    @property
    def pipelined_fps(self) -> float:
        return self.frames / self.pipelined_s

    @property
    def efficiency(self) -> float:
        return self.pipelined_fps / self.model_fps

    def table(self) -> str:
        h, w = self.config.size
        seq = self.sequential_s
        lines = [
            f"bench render: {self.frames} frames {w}x{h}, device {self.device} "
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
            f"  pipelined speed-up : {self.pipelined_fps / self.sequential_fps:7.3f}x over stage by stage",
        ]
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
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
    device = resolve_device(config.device)
    batch_size = config.batch_size or (4 if device.startswith("cuda") else 1)
    render_config = RenderConfig(
        input="-",
        output="-.mp4",
        styles=(str(DEFAULT_STYLE),),
        weights=config.weights,
        untrained=config.weights is None,
        style_size=config.style_size,
        device=device,
        precision=config.precision,
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
                    Path(tmp) / name, encoder=encoder, frame_rate=config.fps, audio_from=clip
                )
            )

        runner = BatchRunner(stylizer)
        with source() as warm:  # warm-up: allocator, kernels, lazy init
            first = next(iter(warm))
        runner.submit([first] * batch_size)
        runner.flush()
        _sync(device)

        say("(a) stage by stage ...")
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
        frames = len(decoded)
        _check_same(stylized, frames)

        say("(b) pipelined ...")
        started = time.perf_counter()
        stats = Pipeline(
            source(),
            stylizer,
            [sink("pipelined.mp4")],
            PipelineConfig(batch_size=batch_size, max_queue_frames=max(8, 2 * batch_size)),
        ).run()
        pipelined_s = time.perf_counter() - started
        if stats.frames_out != frames:
            raise RuntimeError(f"pipelined run wrote {stats.frames_out} frames, expected {frames}")
    return RenderBenchResult(
        config=config,
        device=device,
        precision=stylizer.config.precision,
        batch_size=batch_size,
        threads=torch.get_num_threads(),
        frames=frames,
        sequential_s=times,
        pipelined_s=pipelined_s,
        pipelined_stage_busy_s=dict(stats.stage_busy_s),
    )


def _check_same(stylized: list, frames: int) -> None:
    if len(stylized) != frames or not all(isinstance(f.image, np.ndarray) for f in stylized):
        raise RuntimeError(f"stage-by-stage run stylized {len(stylized)} of {frames} frames")
