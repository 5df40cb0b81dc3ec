"""Offline rendering as a function: :class:`RenderConfig` in, a stylized video (or frames) out.

``stylestream render`` and ``stylestream demo`` are thin wrappers around :func:`render`; tests
call it directly. The order of work is chosen so that mistakes cost nothing: the input is opened
and the output checked (exists? writable? codec known?) before the model is loaded, and the
output file is created only when frames are about to flow.
"""

from __future__ import annotations

import logging
import math
import re
import sys
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from adaattn_video.errors import StylestreamError
from adaattn_video.resources import check_stylizer_memory
from adaattn_video.settings import StylizerSpec, resolve_device
from adaattn_video.stylizer import FrameStylizer, open_stylizer
from configkit.checks import non_negative, positive
from configkit.convert import check_fields, option
from streamer import interrupts
from streamer.frames import FrameSink, FrameSource
from streamer.guard import command_inputs, frame_size, memory_settings, refuse_overlap
from streamer.pipeline import Pipeline, PipelineConfig, PipelineUserError
from streamer.regions.specs import RegionPlan
from streamer.sinks import check_output_file, is_image_output
from streamer.sinks.images import ImageSequenceSink, ImageSequenceSinkConfig, check_image_output
from streamer.sinks.mp4 import Mp4Sink, Mp4SinkConfig, VideoEncoderConfig
from streamer.sources import InputDamagedError, open_source
from streamer.stats import StatsSnapshot
from streamer.temporal.options import TemporalOptions, TemporalSettingError
from streamer.temporal.stylizer import TemporalStylizer

log = logging.getLogger(__name__)


class RenderConfigError(StylestreamError, ValueError):
    """A render setting is invalid (from a flag or a config file)."""


def _finite(name: str, value: float | None) -> None:
    if value is not None and not math.isfinite(value):
        raise RenderConfigError(f"{name} must be a finite number of seconds, got {value}")


@dataclass(frozen=True)
class RenderConfig:
    """Everything one render needs; every field has a ``stylestream render`` flag / YAML key
    (the ``flag`` name of its metadata, e.g. ``start`` for ``start_s``; the stylizer's keys are
    :class:`~adaattn_video.settings.StylizerSpec`'s: ``style``, ``device``, ...).

    ``fragment_s`` is the longest MP4 fragment: the most video a kill can lose, plus the
    encoder's lookahead (see :mod:`streamer.sinks.mp4`).
    """

    input: str = option(
        "", "video file, image folder, frames/%06d.png pattern, or lavfi:GRAPH (e.g. "
        "lavfi:testsrc2=size=320x240:rate=30:duration=5)", metavar="INPUT", positional=True, role="input",
    )  # fmt: skip
    output: str = option(
        "", "output .mp4/.mov/.mkv, or a folder / %06d.png pattern for PNG frames",
        metavar="OUT.mp4", short="-o", role="output",
    )  # fmt: skip
    stylizer: StylizerSpec = option(StylizerSpec(), "the model and style", flatten=True)
    batch_size: int = option(
        0, "frames per model call (0: 4 on CUDA, 1 elsewhere)", metavar="N", check=non_negative
    )
    motion: TemporalOptions = option(
        TemporalOptions(temporal="flow"), "temporal stability (docs/temporal.md)", flatten=True
    )
    codec: str = option("libx264", "video encoder")
    crf: float | None = option(18, "quality, lower is better")
    preset: str | None = option("veryfast", "encoder speed preset")
    pix_fmt: str = option("yuv420p", "pixel format")
    start_s: float = option(
        0.0, "start at S seconds", flag="start", metavar="S", check=non_negative
    )
    duration_s: float | None = option(
        None, "render S seconds", flag="duration", metavar="S", check=positive
    )
    fps: float | None = option(
        None, "frame rate of an image sequence (default 30)", metavar="F", check=positive
    )
    overwrite: bool = option(False, "replace an existing output")
    crash_safe: bool = option(True, "fragmented MP4 that plays after a crash or kill")
    fragment_s: float = option(
        1.0, "longest MP4 fragment: the most video a crash can lose", metavar="S", check=positive
    )
    max_queue_frames: int = option(
        8, "capacity of the queues between stages", check=positive, cli=False
    )
    codec_options: dict[str, str] = option(
        help="extra encoder options", default_factory=dict, cli=False
    )

    def __post_init__(self) -> None:
        if not self.input:
            raise RenderConfigError("expected an INPUT (a video file, image folder or lavfi:...)")
        if not self.output:
            raise RenderConfigError("expected an output: -o OUT.mp4 (or a folder for PNG frames)")
        if not isinstance(self.stylizer, StylizerSpec):
            raise RenderConfigError(f"stylizer must be a StylizerSpec, got {self.stylizer!r}")
        self.stylizer.require_styles()
        for name in ("start_s", "duration_s", "fps", "fragment_s", "crf"):
            _finite(name.removesuffix("_s"), getattr(self, name))
        check_fields(self, RenderConfigError)  # the fields' own checks (> 0, >= 0)

    @property
    def writes_images(self) -> bool:
        return is_image_output(self.output)


@dataclass(frozen=True)
class RenderResult:
    """What a render did."""

    output: Path
    stats: StatsSnapshot
    device: str
    untrained: bool
    audio_streams: int = 0
    padded_size: tuple[int, int] | None = None  # (height, width) when odd sides were padded
    temporal: str | None = None  # the temporal wrapper's status line (None: every lever off)

    @property
    def interrupted_by(self) -> int | None:
        return self.stats.interrupted_by

    def summary(self) -> str:
        s = self.stats
        lines = [
            f"{'interrupted: ' if s.interrupted_by else ''}rendered {s.frames_out} frames in "
            f"{s.elapsed_s:.1f} s ({s.fps_out:.2f} fps) -> {self.output}"
            + (f" (audio: {self.audio_streams} stream(s) copied)" if self.audio_streams else ""),
            f"stage time: {s.stage_summary()} (device {self.device})",
        ]
        if s.interrupted_by:
            lines.append(
                f"the output is finalized and playable; {s.discarded} decoded frame(s) not yet "
                "stylized were discarded"
            )
        if self.padded_size:
            h, w = self.padded_size
            lines.append(
                f"odd frame size padded to {w}x{h} for the encoder (last row/column repeated)"
            )
        if self.temporal:
            lines.append(self.temporal)
        if self.untrained:
            lines.append("NOTE: untrained model (random weights): this output is NOT a stylization")
        return "\n".join(lines)


def build_stylizer(config: RenderConfig, device: str) -> FrameStylizer:
    """Load the model (``--weights``, the cache, or ``--untrained``) and encode the style(s)."""
    return open_stylizer(replace(config.stylizer, device=device))


Monitor = Callable[[StatsSnapshot], None]


def render(
    config: RenderConfig,
    *,
    progress: bool = True,
    stylizer: FrameStylizer | None = None,
    monitor: Monitor | None = None,
    regions: RegionPlan | None = None,
    source: FrameSource | None = None,
) -> RenderResult:
    """Render ``config.input`` into ``config.output``; returns what was done.

    ``progress`` shows a tqdm bar on stderr. ``stylizer`` replaces the model loading (tests,
    benchmarks). When interrupted (SIGINT/SIGTERM) the output is finalized and the result says
    so (``interrupted_by``); errors raise after every output was closed. ``regions`` (checked
    with :meth:`~streamer.regions.specs.RegionPlan.check`) gives regions their own styles. ``source``
    replaces the source opened from ``config.input`` (a segment of a video, see
    :mod:`streamer.cluster`).

    Raises:
        StylestreamError subclasses for user mistakes (missing input, existing output, unknown
        codec, bad value, damaged input -- the frames before the damage are in the output).
    """
    device = resolve_device(config.stylizer.device) if stylizer is None else str(stylizer.device)
    batch_size = config.batch_size or (4 if device.startswith("cuda") else 1)
    pipeline_config, encoder = _pipeline_settings(config, batch_size)
    if source is None:
        source = open_source(
            config.input, start_s=config.start_s, duration_s=config.duration_s, fps=config.fps
        )
    with source:
        _warn_if_endless(config)
        info = source.info()
        _check_output(config)
        interrupts.check()  # a Ctrl-C that some C code swallowed: stop before the model loads
        if stylizer is None:
            check_stylizer_memory(
                **memory_settings(
                    config.stylizer,
                    frame_size(source),
                    batch_size,
                    device,
                    queued=config.max_queue_frames,
                )
            )
            stylizer = build_stylizer(config, device)
        if regions is not None:  # mask sequences are cut like the input: frame i uses mask i
            rate = info.frame_rate or config.fps
            stylizer = regions.attach(
                stylizer, start_s=config.start_s, duration_s=config.duration_s,
                fps=None if rate is None else float(rate),
            )  # fmt: skip
        stylizer = _with_motion(config.motion, stylizer, regions)
        bar = _progress_bar(info.expected_frames, enabled=progress)

        def on_stats(snapshot: StatsSnapshot) -> None:
            if bar is not None:
                bar.update(snapshot.frames_out - bar.n)
            if monitor is not None:
                monitor(snapshot)

        try:
            stats, sink = _run_pipeline(
                config, source, stylizer, encoder, pipeline_config, on_stats
            )
        finally:
            if bar is not None:
                bar.close()
            if isinstance(stylizer, TemporalStylizer):
                stylizer.close()
    mp4 = sink if isinstance(sink, Mp4Sink) else None
    return RenderResult(
        output=Path(config.output),
        stats=stats,
        device=device,
        untrained=config.stylizer.untrained,
        audio_streams=0 if mp4 is None else mp4.audio_streams,
        padded_size=None if mp4 is None else mp4.padded_size,
        temporal=stylizer.status() if isinstance(stylizer, TemporalStylizer) else None,
    )


def _with_motion(options: TemporalOptions, stylizer: Any, regions: RegionPlan | None) -> Any:
    """``stylizer`` with the temporal memory of ``options`` (itself when every lever is off).
    Keyframes would put mask sequences out of step (skipped frames advance no mask)."""
    if not options.active:
        return stylizer
    if regions is not None and options.keyframe_interval > 1:
        raise TemporalSettingError(
            "keyframe_interval > 1 cannot be combined with --region (mask sequences follow "
            "the stylized frames)"
        )
    return TemporalStylizer(stylizer, options)


def _pipeline_settings(
    config: RenderConfig, batch_size: int
) -> tuple[PipelineConfig, VideoEncoderConfig]:
    """The pipeline's and the encoder's settings; a bad value is a :class:`RenderConfigError`."""
    try:
        pipeline_config = PipelineConfig(
            batch_size=batch_size, max_queue_frames=max(config.max_queue_frames, batch_size)
        )
        encoder = VideoEncoderConfig(
            codec=config.codec,
            crf=config.crf,
            preset=config.preset,
            pix_fmt=config.pix_fmt,
            options=dict(config.codec_options),
        )
    except ValueError as err:
        if isinstance(err, StylestreamError):
            raise
        raise RenderConfigError(str(err)) from err
    return pipeline_config, encoder


def _warn_if_endless(config: RenderConfig) -> None:
    """An FFmpeg filter graph without a duration never ends: say so before rendering it."""
    if (
        config.input.startswith("lavfi:")
        and config.duration_s is None
        and not re.search(r"[:=](d|duration)=", config.input)
    ):
        log.warning(
            "%s has no end: rendering until Ctrl-C (add :duration=S to the graph or --duration)",
            config.input,
        )


def _run_pipeline(
    config: RenderConfig,
    source: FrameSource,
    stylizer: Any,
    encoder: VideoEncoderConfig,
    pipeline_config: PipelineConfig,
    on_stats: Monitor,
) -> tuple[StatsSnapshot, FrameSink]:
    """Create the output and run the pipeline into it: (the run's stats, the sink)."""
    try:
        # From the output's creation on, a signal only stops the run, which finalizes the
        # output (or removes it when no frame was written): never a half-made file.
        with interrupts.deferred():
            sink = _make_sink(config, source, encoder)
            try:
                pipeline = Pipeline(source, stylizer, [sink], pipeline_config, monitor=on_stats)
            except BaseException:
                sink.close()
                raise
            return pipeline.run(), sink
    except PipelineUserError as err:
        if isinstance(err.error, InputDamagedError):
            done = pipeline.snapshot().frames_out
            where = f"are in {config.output}" if done else "could not be rendered"
            raise InputDamagedError(
                f"{err.error}; the {done} frame(s) rendered before it {where}", done
            ) from err
        raise


def _check_output(config: RenderConfig) -> None:
    """Fail before the model loads when the output cannot be written."""
    refuse_overlap(
        config.output,
        command_inputs(config.input, config.stylizer.styles, config.stylizer.weights),
    )
    if config.writes_images:
        check_image_output(config.output, overwrite=config.overwrite)
        return
    Mp4SinkConfig(config.output)  # suffix check
    check_output_file(config.output, overwrite=config.overwrite)


def _make_sink(config: RenderConfig, source: FrameSource, encoder: VideoEncoderConfig) -> FrameSink:
    if config.writes_images:
        return ImageSequenceSink(ImageSequenceSinkConfig(config.output, overwrite=config.overwrite))
    info = source.info()
    try:
        sink_config = Mp4SinkConfig(
            config.output,
            encoder=encoder,
            overwrite=config.overwrite,
            crash_safe=config.crash_safe,
            fragment_s=config.fragment_s,
            frame_rate=info.frame_rate,
            audio_from=info.audio_path,
            audio_start_s=config.start_s,
            audio_duration_s=config.duration_s,
        )
    except ValueError as err:
        if isinstance(err, StylestreamError):
            raise
        raise RenderConfigError(str(err)) from err
    return Mp4Sink(sink_config)


def _progress_bar(total: int | None, *, enabled: bool):
    if not enabled:
        return None
    from tqdm import tqdm

    return tqdm(
        total=total,
        unit="frame",
        desc="render",
        file=sys.stderr,
        dynamic_ncols=True,
        smoothing=0.1,
        mininterval=0.5,
    )
