"""Offline rendering as a function: :class:`RenderConfig` in, a stylized video (or frames) out.

``stylestream render`` and ``stylestream demo`` are thin wrappers around :func:`render`; tests
call it directly. The order of work is chosen so that mistakes cost nothing: the input is opened
and the output checked (exists? writable? codec known?) before the model is loaded, and the
output file is created only when frames are about to flow.
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from adaattn_video.errors import StylestreamError
from adaattn_video.stylizer import (
    PRECISIONS,
    FrameStylizer,
    open_stylizer,
    resolve_device,
)
from streamer.frames import FrameSink, FrameSource
from streamer.pipeline import Pipeline, PipelineConfig, PipelineUserError, StatsSnapshot
from streamer.sinks import check_output_file, is_image_output
from streamer.sinks.images import ImageSequenceSink, ImageSequenceSinkConfig, check_image_output
from streamer.sinks.mp4 import Mp4Sink, Mp4SinkConfig, VideoEncoderConfig
from streamer.sources import InputDamagedError, open_source

log = logging.getLogger(__name__)


class RenderConfigError(StylestreamError, ValueError):
    """A render setting is invalid (from a flag or a config file)."""


@dataclass(frozen=True)
class RenderConfig:
    """Everything one render needs; every field has a ``stylestream render`` flag / YAML key.

    Attributes:
        input: a video file, an image folder / ``%06d`` pattern / glob, or ``lavfi:GRAPH``.
        output: ``.mp4``/``.mov``/``.m4v``/``.mkv`` file, or a folder / ``%06d.png`` pattern.
        styles: style image paths (several are mixed with ``style_weights``).
        style_weights: one weight per style (normalised), or None for equal weights.
        weights: a ``.safetensors`` checkpoint, or None for the cached default.
        untrained: random weights (NOT a stylization; smoke tests and benchmarks only).
        size: (height, width) output frame size, or None to keep the input's.
        style_size: longer side style images are resized to (None: native size).
        alpha: content strength in [0, 1] (1 = fully stylized).
        device: ``cpu``, ``cuda``, ``cuda:N`` or ``auto`` (CUDA when available).
        precision: ``fp32``, ``fp16``, ``bf16`` or ``auto`` (fp16 on CUDA, bf16 on CPUs with native bf16, else fp32).
        batch_size: frames per model call; 0 = auto (4 on CUDA, 1 on CPU).
        codec / crf / preset / pix_fmt: video encoder settings (MP4 output).
        start_s / duration_s: the part of the input to render (seconds).
        fps: frame rate of an image-sequence input (None: 30).
        overwrite: replace an existing output.
        crash_safe: fragmented MP4 that survives a kill (see :mod:`streamer.sinks.mp4`).
        fragment_s: longest MP4 fragment in seconds (the most video a kill can lose, plus the
            encoder's lookahead).
        max_queue_frames: capacity of the queues between stages.
    """

    input: str
    output: str
    styles: tuple[str, ...] = ()
    style_weights: tuple[float, ...] | None = None
    weights: str | None = None
    untrained: bool = False
    size: tuple[int, int] | None = None
    style_size: int | None = 512
    alpha: float = 1.0
    device: str = "auto"
    precision: str = "auto"
    batch_size: int = 0
    codec: str = "libx264"
    crf: float | None = 18
    preset: str | None = "veryfast"
    pix_fmt: str = "yuv420p"
    start_s: float = 0.0
    duration_s: float | None = None
    fps: float | None = None
    overwrite: bool = False
    crash_safe: bool = True
    fragment_s: float = 1.0
    max_queue_frames: int = 8
    codec_options: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.input:
            raise RenderConfigError("expected an INPUT (a video file, image folder or lavfi:...)")
        if not self.output:
            raise RenderConfigError("expected an output: -o OUT.mp4 (or a folder for PNG frames)")
        if not self.styles:
            raise RenderConfigError("expected at least one --style image")
        if self.style_weights is not None and len(self.style_weights) != len(self.styles):
            raise RenderConfigError(
                f"expected {len(self.styles)} style weights (one per --style), "
                f"got {len(self.style_weights)}"
            )
        if self.untrained and self.weights is not None:
            raise RenderConfigError("give either --weights or --untrained, not both")
        if self.batch_size < 0:
            raise RenderConfigError(f"batch_size must be >= 0 (0 = auto), got {self.batch_size}")
        if self.precision != "auto" and self.precision not in PRECISIONS:
            raise RenderConfigError(
                f"precision must be auto or one of {sorted(PRECISIONS)}, got {self.precision!r}"
            )
        if self.start_s < 0:
            raise RenderConfigError(f"start must be >= 0 seconds, got {self.start_s}")
        if self.duration_s is not None and self.duration_s <= 0:
            raise RenderConfigError(f"duration must be > 0 seconds, got {self.duration_s}")
        if self.max_queue_frames < 1:
            raise RenderConfigError(f"max_queue_frames must be >= 1, got {self.max_queue_frames}")

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
        if self.untrained:
            lines.append("NOTE: untrained model (random weights): this output is NOT a stylization")
        return "\n".join(lines)


def build_stylizer(config: RenderConfig, device: str) -> FrameStylizer:
    """Load the model (``--weights``, the cache, or ``--untrained``) and encode the style(s)."""
    return open_stylizer(
        list(config.styles),
        weights=config.weights,
        untrained=config.untrained,
        device=device,
        precision=config.precision,
        alpha=config.alpha,
        style_size=config.style_size,
        size=config.size,
        style_weights=config.style_weights,
    )


Monitor = Callable[[StatsSnapshot], None]


def render(
    config: RenderConfig,
    *,
    progress: bool = True,
    stylizer: FrameStylizer | None = None,
    monitor: Monitor | None = None,
    source: FrameSource | None = None,
) -> RenderResult:
    """Render ``config.input`` into ``config.output``; returns what was done.

    ``progress`` shows a tqdm bar on stderr. ``stylizer`` replaces the model loading (tests,
    benchmarks). When interrupted (SIGINT/SIGTERM) the output is finalized and the result says
    so (``interrupted_by``); errors raise after every output was closed. ``source`` replaces
    the source opened from ``config.input`` (a segment of a video, see :mod:`streamer.cluster`).

    Raises:
        StylestreamError subclasses for user mistakes (missing input, existing output, unknown
        codec, bad value, damaged input -- the frames before the damage are in the output).
    """
    device = resolve_device(config.device) if stylizer is None else str(stylizer.device)
    batch_size = config.batch_size or (4 if device.startswith("cuda") else 1)
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
    if source is None:
        source = open_source(
            config.input, start_s=config.start_s, duration_s=config.duration_s, fps=config.fps
        )
    with source:
        if (
            config.input.startswith("lavfi:")
            and config.duration_s is None
            and not re.search(r"[:=](d|duration)=", config.input)
        ):
            log.warning(
                "%s has no end: rendering until Ctrl-C (add :duration=S to the graph or --duration)",
                config.input,
            )
        _check_output(config)
        if stylizer is None:
            stylizer = build_stylizer(config, device)
        sink = _make_sink(config, source, encoder)
        bar = _progress_bar(getattr(source, "expected_frames", None), enabled=progress)

        def on_stats(snapshot: StatsSnapshot) -> None:
            if bar is not None:
                bar.update(snapshot.frames_out - bar.n)
            if monitor is not None:
                monitor(snapshot)

        pipeline = Pipeline(source, stylizer, [sink], pipeline_config, monitor=on_stats)
        try:
            stats = pipeline.run()
        except PipelineUserError as err:
            if isinstance(err.error, InputDamagedError):
                done = pipeline.snapshot().frames_out
                where = f"are in {config.output}" if done else "could not be rendered"
                raise InputDamagedError(
                    f"{err.error}; the {done} frame(s) rendered before it {where}", done
                ) from err
            raise
        finally:
            if bar is not None:
                bar.close()
    return RenderResult(
        output=Path(config.output),
        stats=stats,
        device=device,
        untrained=config.untrained,
        audio_streams=getattr(sink, "audio_streams", 0),
        padded_size=getattr(sink, "padded_size", None),
    )


def _check_output(config: RenderConfig) -> None:
    """Fail before the model loads when the output cannot be written."""
    if config.writes_images:
        check_image_output(config.output, overwrite=config.overwrite)
        return
    Mp4SinkConfig(config.output)  # suffix check
    check_output_file(config.output, overwrite=config.overwrite)


def _make_sink(config: RenderConfig, source: object, encoder: VideoEncoderConfig) -> FrameSink:
    if config.writes_images:
        return ImageSequenceSink(ImageSequenceSinkConfig(config.output, overwrite=config.overwrite))
    try:
        sink_config = Mp4SinkConfig(
            config.output,
            encoder=encoder,
            overwrite=config.overwrite,
            crash_safe=config.crash_safe,
            fragment_s=config.fragment_s,
            frame_rate=getattr(source, "frame_rate", None),
            audio_from=getattr(source, "audio_path", None),
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


def parse_styles(value: str | Sequence[str] | None) -> tuple[str, ...]:
    """A YAML/flag value (one path or a list) -> a tuple of paths."""
    if value is None:
        return ()
    if isinstance(value, (str, Path)):
        return (str(value),)
    return tuple(str(v) for v in value)
