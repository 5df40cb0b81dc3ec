"""Video files (and FFmpeg lavfi test sources) decoded with PyAV.

One :class:`FileSource` reads the first video stream of anything FFmpeg opens (mp4, mkv, mov,
webm, avi, ts...), with FFmpeg's own decoder threads on. Frames keep the stream's pts and time
base, so variable frame rate survives untouched; ``start_s`` / ``duration_s`` select a part.

Timing contract (what sinks rely on):
    - without ``start_s``, ``Frame.pts`` is the decoder's pts unchanged, ``Frame.time_base`` the
      stream's time base;
    - with ``start_s = S``, frames with presentation time < S are skipped and every pts is
      shifted by ``round(S / time_base)`` ticks, so the part starts at time 0. Audio copied by
      :class:`streamer.sinks.mp4.Mp4Sink` is shifted by the same S seconds;
    - the first audio stream is :attr:`FileSource.audio`, an
      :class:`~streamer.sources.audio_feed.AudioFeed` the network outputs read: once an output
      activated it, its packets are demuxed along with the video, on the same (shifted) clock.

Damage: a read or decode error part-way through ends the iteration with
:class:`~streamer.sources.InputDamagedError` AFTER every frame decoded before the damage was
yielded, so those frames are still rendered. Files that end early WITHOUT a decoder error are
caught too, after their frames:

- MP4/MOV and Matroska declare the video stream's duration up front (MP4 in the stream header,
  Matroska in the track's ``DURATION`` tag, written when the file was finished): the last frame's
  time is compared with it;
- MPEG-TS declares nothing (FFmpeg estimates a TS file's duration from its LAST timestamps, so a
  cut file looks complete), but it is a sequence of fixed-size packets (188 bytes; 192 for
  M2TS, 204 with FEC): a local file whose size is not a whole number of packets was cut off.

A ``start_s`` at or past the declared end is an error at ``open()`` (before any output exists).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from streamer.frames import Frame, FrameSource, SourceCounters, SourceInfo
from streamer.sources import InputDamagedError, SourceError, SourceNotFoundError
from streamer.sources.audio_feed import AudioFeed

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class FileSourceConfig:
    """What to read.

    Attributes:
        uri: a file path or anything FFmpeg opens (with ``format="lavfi"``: a filter graph such
            as ``testsrc2=size=320x240:rate=30:duration=5``).
        format: FFmpeg demuxer name to force (``"lavfi"``), or None to probe.
        start_s: skip frames presented before this time (seconds, the input's own clock).
        duration_s: stop after this many seconds of input (None: to the end).
        realtime: pace frames at their own timestamps (a file behaving like a camera); such a
            source is ``live``.
        demuxer_options: FFmpeg demuxer options (strings), passed to ``av.open``.
        decoder_threads: FFmpeg decoder threads, 0 = FFmpeg's choice (one per core).
    """

    uri: str
    format: str | None = None
    start_s: float = 0.0
    duration_s: float | None = None
    realtime: bool = False
    demuxer_options: Mapping[str, str] = field(default_factory=dict)
    decoder_threads: int = 0

    def __post_init__(self) -> None:
        if not self.uri:
            raise SourceError("expected an input file or lavfi graph, got an empty string")
        if self.start_s < 0:
            raise SourceError(f"start must be >= 0 seconds, got {self.start_s}")
        if self.duration_s is not None and self.duration_s <= 0:
            raise SourceError(f"duration must be > 0 seconds, got {self.duration_s}")
        if self.decoder_threads < 0:
            raise SourceError(f"decoder_threads must be >= 0, got {self.decoder_threads}")


class FileSource(FrameSource):
    """Decoded RGB frames of a file's first video stream.

    Use as ``with FileSource(cfg) as source: for frame in source: ...``. The properties
    (``width``, ``time_base``, ``expected_frames``...) are valid once opened.
    """

    def __init__(self, config: FileSourceConfig) -> None:
        self.config = config
        self.frames_read = 0
        self._container: av.container.InputContainer | None = None
        self._stream: av.video.stream.VideoStream | None = None
        self.audio: AudioFeed | None = None  # the first audio stream, for the outputs

    # -- life cycle -------------------------------------------------------------------------
    @property
    def live(self) -> bool:
        return self.config.realtime

    def open(self) -> None:
        if self._container is not None:
            return
        cfg = self.config
        is_lavfi = cfg.format == "lavfi"
        if not is_lavfi and "://" not in cfg.uri and not Path(cfg.uri).exists():
            raise SourceNotFoundError(f"input {cfg.uri} does not exist")
        try:
            container = av.open(cfg.uri, format=cfg.format, options=dict(cfg.demuxer_options))
        except av.FFmpegError as err:
            what = f"lavfi graph {cfg.uri!r}" if is_lavfi else f"input {cfg.uri}"
            raise SourceError(
                f"cannot open {what}: {_describe(err)}"
                + ("" if is_lavfi else " (is it a video file FFmpeg can read?)")
            ) from err
        if not container.streams.video:
            kinds = ", ".join(s.type for s in container.streams) or "none"
            container.close()
            raise SourceError(f"input {cfg.uri} has no video stream (streams: {kinds})")
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"  # frame + slice threads inside FFmpeg's decoder
        if cfg.decoder_threads:
            stream.codec_context.thread_count = cfg.decoder_threads
        self._container, self._stream = container, stream
        if container.streams.audio and not is_lavfi:
            self.audio = AudioFeed(container.streams.audio[0])
        end = self.end_s
        if cfg.start_s and end is not None and cfg.start_s >= end:
            self.close()
            raise SourceError(
                f"--start {cfg.start_s:g} s is past the end of {cfg.uri}: the input ends at "
                f"{end:.1f} s; give a start before that"
            )
        log.debug(
            "opened %s: %dx%d, time base %s, rate %s, frames %s",
            cfg.uri,
            stream.codec_context.width,
            stream.codec_context.height,
            stream.time_base,
            stream.average_rate,
            self.expected_frames,
        )

    def close(self) -> None:
        if self._container is not None:
            self._container.close()
            self._container = None

    def info(self) -> SourceInfo:
        return SourceInfo(
            frame_rate=self.frame_rate,
            expected_frames=self.expected_frames,
            width=self.width,
            height=self.height,
            time_base=self.time_base,
            audio_path=self.audio_path,
        )

    def counters(self) -> SourceCounters:
        return SourceCounters(read=self.frames_read)

    # -- what the input is ------------------------------------------------------------------
    @property
    def stream(self) -> av.video.stream.VideoStream:
        if self._stream is None:
            raise RuntimeError("source is not open: use it in a `with` block")
        return self._stream

    @property
    def width(self) -> int:
        return self.stream.codec_context.width

    @property
    def height(self) -> int:
        return self.stream.codec_context.height

    @property
    def time_base(self) -> Fraction:
        return Fraction(self.stream.time_base)

    @property
    def frame_rate(self) -> Fraction | None:
        """Average frame rate (frames per second), or None when the container does not say."""
        rate = self.stream.average_rate or self.stream.guessed_rate
        return Fraction(rate) if rate else None

    @property
    def audio_path(self) -> str | None:
        """The file whose audio a sink may copy (None for lavfi and files without audio)."""
        if self.config.format == "lavfi" or self._container is None:
            return None
        return self.config.uri if self._container.streams.audio else None

    @property
    def stream_duration_s(self) -> float | None:
        """Duration of the video stream as the container declares it, or None."""
        stream = self.stream
        if stream.duration:
            return float(stream.duration * stream.time_base)
        return None

    @property
    def tagged_duration_s(self) -> float | None:
        """The video track's ``DURATION`` tag (Matroska/WebM writers set it when the file is
        finished, so it survives a cut), or None."""
        tag = self.stream.metadata.get("DURATION") or self.stream.metadata.get("duration")
        return _parse_clock(tag) if tag else None

    @property
    def end_s(self) -> float | None:
        """Presentation time where the input's video ends as declared (stream start +
        duration), or None when it declares nothing (lavfi, raw streams)."""
        if self.config.format == "lavfi":
            return None
        stream = self.stream
        start = float((stream.start_time or 0) * stream.time_base)
        duration = self.stream_duration_s or self.tagged_duration_s
        if duration is not None:
            return start + duration
        container = self._container
        if container is not None and container.duration:
            return (container.start_time or 0) / av.time_base + container.duration / av.time_base
        return None

    @property
    def container_duration_s(self) -> float | None:
        container = self._container
        if container is None or not container.duration:
            return None
        return container.duration / av.time_base

    @property
    def expected_frames(self) -> int | None:
        """Frames this source will yield as far as the container tells (for progress bars)."""
        rate = self.frame_rate
        total = self.stream.frames or None
        duration = self.stream_duration_s or self.container_duration_s
        if total is None and duration is not None and rate:
            total = round(duration * rate)
        cfg = self.config
        if cfg.start_s or cfg.duration_s is not None:
            if rate is None:
                return None
            remaining = None if total is None else max(0, total - round(cfg.start_s * rate))
            wanted = None if cfg.duration_s is None else round(cfg.duration_s * rate)
            known = [n for n in (remaining, wanted) if n is not None]
            return min(known) if known else None
        return total

    # -- frames -----------------------------------------------------------------------------
    def __iter__(self) -> Iterator[Frame]:
        container = self._container
        if container is None:
            raise RuntimeError("source is not open: use it in a `with` block")
        cfg = self.config
        stream = self.stream
        time_base = Fraction(stream.time_base)
        start_ticks = round(Fraction(cfg.start_s) / time_base) if cfg.start_s else 0
        end_ticks = (
            None
            if cfg.duration_s is None
            else start_ticks + round(Fraction(cfg.duration_s) / time_base)
        )
        if start_ticks:
            self._seek(start_ticks)
        rate = self.frame_rate
        step = max(1, round(1 / (rate * time_base))) if rate else 1
        last_pts: int | None = None
        pace_origin: tuple[float, int] | None = None
        reached_end = False
        self.frames_read = 0
        audio = self.audio if self.audio is not None and self.audio.active else None
        streams = (stream,) if audio is None else (stream, container.streams.audio[0])
        try:
            for packet in container.demux(*streams):
                if audio is not None and packet.stream.type == "audio":
                    audio.add_packet(packet, cfg.start_s)
                    continue
                for av_frame in packet.decode():
                    pts = av_frame.pts
                    if pts is None:  # some raw/streamed inputs: continue the frame clock
                        pts = 0 if last_pts is None else last_pts + step
                    if pts < start_ticks:
                        continue
                    if end_ticks is not None and pts >= end_ticks:
                        reached_end = True
                        return
                    if cfg.realtime:
                        pace_origin = _pace(pace_origin, pts, time_base)
                    image = np.ascontiguousarray(av_frame.to_ndarray(format="rgb24"))
                    last_pts = pts
                    yield Frame(
                        index=self.frames_read,
                        image=image,
                        pts=pts - start_ticks,
                        time_base=time_base,
                        capture_time_s=time.time(),
                    )
                    self.frames_read += 1
        except av.FFmpegError as err:
            at = "the start" if last_pts is None else f"{float(last_pts * time_base):.3f} s"
            raise InputDamagedError(
                f"input {cfg.uri} is damaged or truncated after {at} "
                f"({self.frames_read} frames read): {_describe(err)}",
                self.frames_read,
            ) from err
        if not reached_end:
            self._check_complete(last_pts, time_base, step)

    def _check_packet_size(self) -> None:
        """A local MPEG-TS file is whole packets; a size that is not was cut off mid-packet."""
        cfg = self.config
        container = self._container
        if container is None or cfg.format == "lavfi" or "mpegts" not in container.format.name:
            return
        path = Path(cfg.uri)
        if not path.is_file():
            return
        size = path.stat().st_size
        if all(size % packet for packet in TS_PACKET_SIZES):
            raise InputDamagedError(
                f"input {cfg.uri} is truncated: its {size} bytes are not a whole number of "
                f"transport-stream packets ({self.frames_read} frames read before the cut)",
                self.frames_read,
            )

    def _seek(self, start_ticks: int) -> None:
        """Jump to the keyframe before ``start_ticks`` when the input can seek (files can, lavfi
        cannot: then frames before the start are decoded and skipped)."""
        if self.config.format == "lavfi":
            return
        try:
            self._container.seek(start_ticks, stream=self.stream, backward=True)
        except av.FFmpegError as err:
            log.debug("cannot seek in %s (%s): decoding from the start", self.config.uri, err)

    def _check_complete(self, last_pts: int | None, time_base: Fraction, step: int) -> None:
        """Detect an input that ended early without a decoder error (a cut Matroska or
        MPEG-TS file): raise :class:`InputDamagedError` after its frames were yielded."""
        cfg = self.config
        self._check_packet_size()
        declared = self.stream_duration_s or self.tagged_duration_s
        trusted = declared is not None  # the video stream's own duration: a real promise
        if declared is None:
            declared = self.container_duration_s  # max over streams: audio may be longer
        if declared is None or cfg.format == "lavfi":
            return
        start = (self.stream.start_time or 0) * time_base
        got = 0.0 if last_pts is None else float((last_pts + step) * time_base - start)
        wanted = declared - cfg.start_s
        if cfg.duration_s is not None:
            wanted = min(wanted, cfg.duration_s)
        slack = max(0.5, 3 * float(step * time_base))
        if got + slack >= wanted:
            return
        message = (
            f"input {cfg.uri} ended at {got + cfg.start_s:.2f} s but declares "
            f"{declared:.2f} s: the file is probably truncated ({self.frames_read} frames read)"
        )
        if trusted:
            raise InputDamagedError(message, self.frames_read)
        log.warning("%s", message)


TS_PACKET_SIZES = (188, 192, 204)  # MPEG-TS, M2TS (4-byte timecode prefix), TS with FEC


def _parse_clock(text: str) -> float | None:
    """``"00:00:02.000000000"`` -> 2.0 (None when it is not such a clock)."""
    parts = text.strip().split(":")
    try:
        seconds = 0.0
        for part in parts:
            seconds = 60 * seconds + float(part)
    except ValueError:
        return None
    return seconds if seconds > 0 else None


def _pace(origin: tuple[float, int] | None, pts: int, time_base: Fraction) -> tuple[float, int]:
    """Sleep until the frame at ``pts`` is due, measured from ``origin`` = (wall-clock time,
    pts) of the first frame; returns the origin (set on the first call)."""
    now = time.monotonic()
    if origin is None:
        return (now, pts)
    delay = origin[0] + float((pts - origin[1]) * time_base) - now
    if delay > 0:
        time.sleep(delay)
    return origin


def _describe(err: av.FFmpegError) -> str:
    """FFmpeg's message without PyAV's repr noise."""
    return err.strerror or str(err)
