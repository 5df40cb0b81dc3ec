"""Stylized RGB frames -> H.264 (+ optional silent AAC) packets into a PyAV output container.

Low latency by default: libx264 ``tune=zerolatency`` (no lookahead, no B-frames), a GOP of
``gop_s`` seconds at the stream's frame rate (a player joining, or a reconnect, waits at most
that long for a keyframe), ``preset=veryfast``. Every setting can be overridden through
:attr:`EncoderSettings.options` (FFmpeg codec options as strings).

Timestamps come from the source clock: a frame's ``pts * time_base`` (seconds), relative to the
first frame of the connection, in a 1/90000 s encoder time base; frames without pts use their
capture time. Non-increasing times (a source restart) are bumped one tick. Players then pace
the video as the source did and can keep it in sync with audio.

Audio (:mod:`streamer.outputs.audio_track`): given the source's
:class:`~streamer.sources.audio_feed.AudioFeed`, the connection carries the source's audio on the
same clock as the video (AAC copied, other codecs encoded to AAC); without one, ingest services
(RTMP) still get a track: stereo 48 kHz AAC silence that follows the video clock.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

import av
import numpy as np
from av.video.reformatter import Colorspace

from streamer.frames import Frame
from streamer.outputs.audio_track import AudioTrack, SilentAudio, SourceAudio
from streamer.sinks import EncoderError
from streamer.sources.audio_feed import AudioFeed

log = logging.getLogger(__name__)

VIDEO_TIME_BASE = Fraction(1, 90000)
BT709 = 1
MPEG_RANGE = 1


@dataclass(frozen=True)
class EncoderSettings:
    """The video encoder of a network/HLS output.

    Attributes:
        codec: FFmpeg encoder (``libx264``; ``h264_nvenc`` where there is an NVIDIA GPU).
        preset / tune: libx264's speed preset and tuning (``zerolatency``: no frame delay;
            ``none``: no tuning).
        gop_s: seconds between keyframes (GOP = round(gop_s * frame rate), at least 1 frame).
        bitrate: target bits per second, or 0 for constant quality (``crf``).
        crf: constant quality when ``bitrate`` is 0.
        frame_threads: encode with FFmpeg frame threads (RTSP: single-slice frames, which some
            depayloaders need) instead of slice threads.
        options: further encoder options, applied last (they win).
    """

    codec: str = "libx264"
    preset: str = "veryfast"
    tune: str = "zerolatency"
    gop_s: float = 1.0
    bitrate: int = 2_500_000
    crf: int = 23
    frame_threads: bool = False
    options: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.codec not in av.codecs_available:
            raise EncoderError(f"unknown video encoder {self.codec!r}")
        if self.gop_s <= 0:
            raise EncoderError(f"gop_s must be > 0, got {self.gop_s}")
        if self.bitrate < 0:
            raise EncoderError(f"bitrate must be >= 0, got {self.bitrate}")

    def gop(self, frame_rate: Fraction) -> int:
        return max(1, round(float(frame_rate) * self.gop_s))

    def codec_options(self, frame_rate: Fraction) -> dict[str, str]:
        gop = str(self.gop(frame_rate))
        options = {"g": gop, "keyint_min": gop, "bf": "0", "sc_threshold": "0"}
        if self.codec.startswith("libx264"):
            options["preset"] = self.preset
            if self.tune not in ("", "none"):
                options["tune"] = self.tune
            if not self.bitrate:
                options["crf"] = str(self.crf)
        if self.bitrate:
            rate = str(self.bitrate)
            options.update(b=rate, maxrate=rate, bufsize=str(self.bitrate // 2))
        options.update({str(k): str(v) for k, v in self.options.items()})
        return options


class TimestampMapper:
    """Frame -> increasing pts in :data:`VIDEO_TIME_BASE`, starting at 0 for the first frame."""

    def __init__(self) -> None:
        self._origin: float | None = None
        self._last = -1

    @property
    def origin_s(self) -> float | None:
        """The first frame's time on the source clock (seconds), None before it."""
        return self._origin

    def __call__(self, frame: Frame) -> int:
        seconds = frame.time_s
        if seconds is None:
            seconds = frame.capture_time_s
        if self._origin is None:
            self._origin = seconds
        pts = round((seconds - self._origin) / VIDEO_TIME_BASE)
        if pts <= self._last:
            pts = self._last + 1
        self._last = pts
        return pts


def even_size(width: int, height: int) -> tuple[int, int]:
    """yuv420p needs even sides: odd ones grow by one (the frame is edge-padded)."""
    return width + (width & 1), height + (height & 1)


def to_video_frame(image: np.ndarray, size: tuple[int, int], pix_fmt: str) -> av.VideoFrame:
    """(H, W, 3) uint8 RGB -> a BT.709 limited-range frame of ``size`` (edge-padded/resized)."""
    width, height = size
    h, w = image.shape[:2]
    if (w, h) != (width, height):
        if w <= width and h <= height and width - w <= 1 and height - h <= 1:
            image = np.pad(image, ((0, height - h), (0, width - w), (0, 0)), mode="edge")
        else:
            import cv2

            image = cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA)
    frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format="rgb24")
    if pix_fmt != "rgb24":
        frame = frame.reformat(format=pix_fmt, dst_colorspace=Colorspace.ITU709)
    return frame


class AvConnection:
    """One PyAV output container with an H.264 stream (and optionally an AAC track).

    Args:
        open_container: returns the opened output container (the caller picks URL/format/IO).
        settings: the video encoder.
        frame: the first frame (its size sizes the stream).
        frame_rate: nominal rate (GOP length, the stream's declared rate).
        silent_audio: without source ``audio``, add a silent AAC track (RTMP ingest expects
            audio).
        audio: the source's audio (read from this connection's start on), or None.
        on_close: called after the container is closed (e.g. to reap a helper process).
    """

    def __init__(
        self,
        open_container: Callable[[], Any],
        settings: EncoderSettings,
        frame: Frame,
        frame_rate: Fraction,
        *,
        silent_audio: bool = False,
        audio: AudioFeed | None = None,
        on_close: Callable[[], None] | None = None,
    ) -> None:
        self._on_close = on_close
        self.container = open_container()
        try:
            h, w = frame.image.shape[:2]
            self.size = even_size(w, h)
            self.video = self._add_video(settings, frame_rate)
            self.audio: AudioTrack | None = None
            if audio is not None:
                self.audio = SourceAudio(self.container, audio)
            elif silent_audio:
                self.audio = SilentAudio(self.container)
            self.container.start_encoding()  # connect and write the header now, not later
        except Exception:
            self._close_container()
            raise
        self._pts = TimestampMapper()
        self._frame_s = float(1 / frame_rate)
        self._video_end_s = 0.0
        self._closed = False

    def _add_video(self, settings: EncoderSettings, frame_rate: Fraction) -> Any:
        try:
            stream = self.container.add_stream(
                settings.codec, rate=frame_rate, options=settings.codec_options(frame_rate)
            )
        except (av.error.FFmpegError, ValueError) as err:
            raise EncoderError(f"encoder {settings.codec}: {err}") from err
        stream.width, stream.height = self.size
        stream.pix_fmt = "yuv420p"
        ctx = stream.codec_context
        ctx.time_base = VIDEO_TIME_BASE
        ctx.gop_size = settings.gop(frame_rate)
        ctx.max_b_frames = 0
        ctx.thread_type = "FRAME" if settings.frame_threads else "SLICE"
        ctx.color_primaries = ctx.color_trc = ctx.colorspace = BT709
        ctx.color_range = MPEG_RANGE
        return stream

    def send(self, frame: Frame) -> None:
        video_frame = to_video_frame(frame.image, self.size, "yuv420p")
        video_frame.pts = self._pts(frame)
        video_frame.time_base = VIDEO_TIME_BASE
        self.container.mux(self.video.encode(video_frame))
        video_s = float(video_frame.pts * VIDEO_TIME_BASE)
        self._video_end_s = video_s + self._frame_s
        if self.audio is not None and self._pts.origin_s is not None:
            self.audio.advance(self._pts.origin_s, video_s)

    def close(self) -> None:
        """Flush the encoders and close the container (never raises)."""
        if self._closed:
            return
        self._closed = True
        try:
            self.container.mux(self.video.encode(None))
            if self.audio is not None:
                self.audio.finish(self._pts.origin_s, self._video_end_s)
        except Exception as err:
            log.debug("flush failed: %s", err)
        self._close_container()

    def _close_container(self) -> None:
        try:
            self.container.close()
        except Exception as err:
            log.debug("close failed: %s", err)
        if self._on_close is not None:
            self._on_close()


__all__ = ["AvConnection", "EncoderSettings", "TimestampMapper", "even_size", "to_video_frame"]
