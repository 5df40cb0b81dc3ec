"""``stylestream bench render --ray --workers 1 2``: what segment-parallel rendering costs.

For each worker count the same clip is rendered on Ray (``--ray local`` starts a runtime with
the machine's cores) and timed by stage; a single-process render of the clip with the same model
gives the per-worker fps the cost model needs. The join is measured on its own on a longer clip
(``--join-seconds``, segments encoded without the model) and reported per minute and per hour of
video, since on a real cluster it is the one stage that does not shrink with more workers::

    time = frames / (workers x per-worker fps) + worker start + join time
"""

from __future__ import annotations

import dataclasses
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from adaattn_video.assets import DEFAULT_STYLE
from adaattn_video.settings import StylizerSpec
from benchmarks.timing import Stopwatch, markdown_table
from configkit.convert import to_mapping
from streamer.batch_runner import ArrayStylizer
from streamer.cluster import import_ray
from streamer.cluster.join import join_segments
from streamer.cluster.plan import plan_video
from streamer.cluster.runner import ClusterConfig, render_on_ray
from streamer.cluster.segment import render_segment
from streamer.cluster.worker import connect_ray
from streamer.demo import make_demo_clip
from streamer.render import RenderConfig, build_stylizer, render
from streamer.temporal.options import TemporalOptions


@dataclass(frozen=True)
class RayBenchConfig:
    """Attributes: size (height, width), seconds/fps of the clip, worker counts, segment
    length, the model (``stylizer``: random weights unless ``weights``; the bundled style
    unless ``styles``), seconds of video for the join test."""

    size: tuple[int, int] = (144, 256)
    seconds: float = 4.0
    fps: int = 24
    workers: tuple[int, ...] = (1, 2)
    segment_s: float = 1.0
    address: str = "local"
    stylizer: StylizerSpec = StylizerSpec(untrained=True, device="cpu", style_size=256)
    join_seconds: float = 60.0

    def __post_init__(self) -> None:
        if not self.workers or min(self.workers) < 1:
            raise ValueError(f"workers must be counts >= 1, got {self.workers}")
        if self.seconds <= 0 or self.join_seconds <= 0:
            raise ValueError("seconds and join_seconds must be > 0")


@dataclass
class RayBenchRow:
    workers: int
    frames: int
    segments: int
    start_s: float  # actors up: process start, model load, style encode
    setup_s: float  # model load + style encode inside one actor (the slowest)
    render_s: float
    join_s: float
    segment_mean_s: float

    @property
    def fps(self) -> float:
        return self.frames / self.render_s if self.render_s else 0.0


@dataclass
class RayBenchResult:
    config: RayBenchConfig
    single_fps: float
    rows: list[RayBenchRow] = field(default_factory=list)
    join_video_s: float = 0.0
    join_packets: int = 0
    join_s: float = 0.0

    @property
    def join_s_per_minute(self) -> float:
        return self.join_s / self.join_video_s * 60 if self.join_video_s else 0.0

    def table(self) -> str:
        h, w = self.config.size
        lines = [
            f"clip {w}x{h}, {self.config.seconds:g} s at {self.config.fps} fps, segments of "
            f"{self.config.segment_s:g} s; single process: {self.single_fps:.2f} fps",
        ]
        header = [
            "workers", "segments", "worker start s", "model+style s", "render s", "fps",
            "speed-up", "join s", "mean s / segment", "per-segment overhead s",
        ]  # fmt: skip
        base = self.rows[0].fps if self.rows else 0.0
        cells = []
        for row in self.rows:
            # only one worker alone has the single process's machine: others share its cores
            ideal = row.frames / row.segments / self.single_fps if self.single_fps else 0.0
            overhead = f"{row.segment_mean_s - ideal:+.2f}" if row.workers == 1 else "-"
            cells.append(
                [
                    row.workers,
                    row.segments,
                    f"{row.start_s:.2f}",
                    f"{row.setup_s:.2f}",
                    f"{row.render_s:.2f}",
                    f"{row.fps:.2f}",
                    f"{row.fps / base if base else 0:.2f}x",
                    f"{row.join_s:.3f}",
                    f"{row.segment_mean_s:.2f}",
                    overhead,
                ]
            )
        lines.append(markdown_table(header, cells, pad=False))
        lines.append(
            f"join alone: {self.join_s:.3f} s for {self.join_video_s:g} s of {w}x{h} video "
            f"({self.join_packets} video packets + its audio) = {self.join_s_per_minute:.3f} s per "
            f"minute, {self.join_s_per_minute * 60:.1f} s per hour of video"
        )
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        config = dataclasses.asdict(self.config)
        config.pop("stylizer")
        config.update(to_mapping(self.config.stylizer))  # flat, as `bench render --json`
        return {
            "config": config,
            "single_fps": self.single_fps,
            "rows": [dict(dataclasses.asdict(r), fps=r.fps) for r in self.rows],
            "join_video_s": self.join_video_s,
            "join_s": self.join_s,
            "join_s_per_minute": self.join_s_per_minute,
        }


def run_ray_benchmark(config: RayBenchConfig, progress=print) -> RayBenchResult:
    ray = import_ray()
    with tempfile.TemporaryDirectory(prefix="stylestream-raybench-") as tmp:
        folder = Path(tmp)
        clip = make_demo_clip(folder / "clip.mp4", size=config.size, fps=config.fps,
                              seconds=config.seconds)  # fmt: skip
        spec = config.stylizer
        render_config = RenderConfig(
            input=str(clip),
            output=str(folder / "single.mp4"),
            stylizer=dataclasses.replace(spec, styles=spec.styles or (str(DEFAULT_STYLE),)),
        )
        progress("single process render (the per-worker fps) ...")
        stylizer = build_stylizer(render_config, render_config.stylizer.device)
        single = render(render_config, progress=False, stylizer=stylizer)
        result = RayBenchResult(config=config, single_fps=single.stats.fps_out)
        started = connect_ray(ray, config.address)
        try:
            for workers in config.workers:
                progress(f"Ray, {workers} worker(s) ...")
                out = folder / f"ray{workers}.mp4"
                done = render_on_ray(
                    dataclasses.replace(render_config, output=str(out)),
                    ClusterConfig(address=config.address, workers=workers,
                                  segment_s=config.segment_s),
                    progress=False,
                )  # fmt: skip
                result.rows.append(
                    RayBenchRow(
                        workers=done.workers,
                        frames=done.frames,
                        segments=done.segments_rendered,
                        start_s=done.stage_s.get("start workers", 0.0),
                        setup_s=max(done.worker_setup_s, default=0.0),
                        render_s=done.stage_s.get("render", 0.0),
                        join_s=done.stage_s.get("join", 0.0),
                        segment_mean_s=sum(done.segment_s) / max(1, len(done.segment_s)),
                    )
                )
        finally:
            if started:
                ray.shutdown()
        progress(f"join alone on {config.join_seconds:g} s of video ...")
        _measure_join(result, folder, config)
    return result


def _measure_join(result: RayBenchResult, folder: Path, config: RayBenchConfig) -> None:
    """Encode a long clip's segments without the model (decode -> encode), then time the join."""
    clip = make_demo_clip(folder / "long.mp4", size=config.size, fps=config.fps,
                          seconds=config.join_seconds)  # fmt: skip
    plan = plan_video(clip, 10.0)
    encode = RenderConfig(
        input=str(clip), output=str(folder / "seg.mp4"),
        stylizer=StylizerSpec(styles=(str(DEFAULT_STYLE),), untrained=True),
        motion=TemporalOptions(temporal="off"),  # an identity "stylizer": nothing to stabilize
    )  # fmt: skip
    identity = ArrayStylizer(lambda images: images)  # segments at decode + encode speed
    files = []
    for segment in plan.segments:
        part = render_segment(encode, segment, plan.time_base, identity)  # type: ignore[arg-type]
        ((name, data),) = part.files.items()
        (folder / name).write_bytes(data)
        files.append(folder / name)
    with Stopwatch() as watch:  # the CPU: no device to wait for
        joined = join_segments(files, folder / "joined.mp4",
                               starts=[s.start_pts for s in plan.segments],
                               time_base=plan.time_base, audio_from=str(clip))  # fmt: skip
    result.join_s = watch.seconds
    result.join_packets = joined.video_packets
    result.join_video_s = plan.duration_s
