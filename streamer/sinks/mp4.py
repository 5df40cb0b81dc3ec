"""Stylized frames -> an MP4 (or MOV/MKV) file with PyAV: exact timing, copied audio, crash-safe.

Crash safety (``crash_safe=True``, the default)
    The file is written as a fragmented MP4
    (``movflags=frag_keyframe+delay_moov+default_base_moof``, a fragment at least every
    ``fragment_s`` seconds, I/O flushed after each fragment). Every finished fragment is playable
    on its own, so a process killed at any point (SIGKILL, power loss) leaves a file that plays
    up to the last complete fragment; what is lost is the fragment being built (<= ``fragment_s``
    of video) plus the frames inside the encoder's lookahead (libx264 veryfast: ~10-15 frames).
    It starts under a temporary name in the output's folder and is renamed onto its final name
    as soon as the first fragment is on disk (the muxer keeps writing the renamed file): a kill
    after that leaves a playable file under the name the user asked for, a failure before it
    (bad encoder option, no frame) leaves an older output there untouched. A temp file renamed
    only at the end would leave nothing under the final name after a kill.
    ``delay_moov`` is what keeps the timing exact: the header (moov) is written once the first
    fragment is known, so it carries the edit lists for libx264's B-frame delay and for the AAC
    priming of copied audio. The plain ``empty_moov`` flavour cannot, and shifts every video
    frame by the B-frame delay (2 frames) and by the AAC priming (1024 samples, ~21 ms) -- we
    measured both; ``tests/test_sinks.py`` checks every output frame time against the input.
    So B-frames stay on. The price: nothing is on disk before the first fragment is complete
    (the first ``fragment_s`` of video plus the lookahead).
    ``crash_safe=False`` writes a regular MP4 (moov at the end, moved to the front on close,
    renamed onto the final name only then): slightly smaller, but a killed process leaves
    nothing usable.

Timing
    Frames keep their pts and time base (the encoder's time base is the input stream's), so a
    variable-frame-rate input stays variable. The muxer may scale the time base by a power of
    two (MP4 timescales below 10000 are raised), which keeps every time exact. Non-increasing pts
    (broken inputs) are bumped by one tick, with a warning.

Audio
    ``audio_from`` names a file whose audio streams are copied packet by packet (no re-encode,
    byte-identical), interleaved with the video as it is written, cut to ``[start, start +
    duration)`` and shifted by ``start`` (the same shift the source applied to the video).
    When the render stops early (Ctrl-C, damaged input) audio is copied up to the end of the
    last video frame written; after a complete render (``end_of_stream()``), to its end. MP4
    takes AAC, MP3, Opus, AC-3/E-AC-3, FLAC, ALAC; other codecs (e.g. Vorbis) are left out with a
    warning -- write ``.mkv`` to keep them.

Colours
    Frames are RGB; for YUV pixel formats the sink converts them itself with the BT.709 matrix
    (limited range) and tags the stream BT.709, so every player converts back the same way. (The
    source side reads each input frame's own colour tags, see PyAV's ``to_ndarray``.) Untagged
    streams are a trap: players guess BT.601 for SD and BT.709 for HD.

Sizes
    Encoders with chroma subsampling (yuv420p: both sides, yuv422p: width) need even sides. A
    frame with an odd side is padded by repeating its last row/column, so the video is one pixel
    larger there and its top-left W x H region is exactly the stylized frame. Even sizes are kept.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
from av.video.reformatter import Colorspace

from streamer.frames import Frame, FrameSink
from streamer.guard import temporary_name
from streamer.sinks import EncoderError, OutputError, check_output_file
from streamer.sinks.audio import AudioCopy

log = logging.getLogger(__name__)

FRAGMENTED_MOVFLAGS = "frag_keyframe+delay_moov+default_base_moof"
MP4_FAMILY = frozenset({".mp4", ".m4v", ".mov"})
MP4_AUDIO_CODECS = frozenset({"aac", "mp3", "mp2", "opus", "ac3", "eac3", "flac", "alac"})
# encoders that understand -crf / -preset (others get neither, with a warning when asked for)
CRF_CODECS = frozenset({"libx264", "libx264rgb", "libx265", "libvpx", "libvpx-vp9", "libsvtav1"})
PRESET_CODECS = frozenset({"libx264", "libx264rgb", "libx265", "libsvtav1"})
AUDIO_LEAD_S = 0.5  # audio is muxed this far ahead of the last video frame
BT709 = 1  # AVCOL_SPC/PRI/TRC_BT709
MPEG_RANGE = 1  # AVCOL_RANGE_MPEG: limited ("TV") range, what players expect from yuv420p


@dataclass(frozen=True)
class VideoEncoderConfig:
    """Attributes:
    codec: FFmpeg encoder name (``libx264``, ``libx265``, ``libvpx-vp9``, ``libsvtav1``, ...).
    crf: constant rate factor (lower = better; libx264: 0-51, 18 is visually near-lossless),
        or None for the encoder's default rate control.
    preset: speed/size trade-off (libx264: ultrafast ... veryslow), or None.
    pix_fmt: pixel format of the encoded video (``yuv420p`` plays everywhere).
    options: further encoder options as strings (``{"g": "60", "x264-params": "..."}``).
    """

    codec: str = "libx264"
    crf: float | None = 18
    preset: str | None = "veryfast"
    pix_fmt: str = "yuv420p"
    options: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        codec = video_encoder(self.codec)
        formats = [f.name for f in (codec.video_formats or [])]
        if formats and self.pix_fmt not in formats:
            raise EncoderError(
                f"encoder {self.codec} does not take pixel format {self.pix_fmt!r}; "
                f"it takes: {', '.join(formats)}"
            )
        if self.crf is not None and not 0 <= self.crf <= 63:
            raise EncoderError(f"crf must be in [0, 63], got {self.crf}")

    def codec_options(self) -> dict[str, str]:
        """Options for ``add_stream``: crf/preset where the encoder knows them, then ``options``."""
        options: dict[str, str] = {}
        if self.crf is not None:
            if self.codec in CRF_CODECS:
                options["crf"] = f"{self.crf:g}"
                if self.codec in ("libvpx", "libvpx-vp9"):
                    options.setdefault("b", "0")  # constant quality mode
            else:
                log.warning("encoder %s has no crf option: using its default quality", self.codec)
        if self.preset is not None:
            if self.codec in PRESET_CODECS:
                options["preset"] = str(self.preset)
            else:
                log.warning("encoder %s has no preset option: ignored", self.codec)
        options.update({str(k): str(v) for k, v in self.options.items()})
        return options


def video_encoder(name: str) -> av.Codec:
    """The FFmpeg video encoder called ``name``, or a clear error listing common ones."""
    try:
        codec = av.Codec(name, "w")
    except (av.codec.codec.UnknownCodecError, ValueError) as err:
        raise EncoderError(
            f"unknown video encoder {name!r}; try libx264, libx265, libvpx-vp9, libsvtav1 "
            "or mpeg4 (`python -c 'import av; print(sorted(av.codecs_available))'` lists all)"
        ) from err
    if codec.type != "video":
        raise EncoderError(f"{name!r} is a {codec.type} encoder, expected a video encoder")
    return codec


def container_options(suffix: str, crash_safe: bool, fragment_s: float) -> dict[str, str]:
    """Muxer options of an output with this suffix (see the module docstring); shared with the
    segment joiner of :mod:`streamer.cluster.join`, so a joined video has the same layout."""
    if suffix.lower() not in MP4_FAMILY:
        # Matroska: clusters are readable up to a cut anyway. Negative timestamps (AAC
        # priming) are allowed, else the muxer shifts every stream by the priming delay.
        return {"flush_packets": "1", "avoid_negative_ts": "disabled"}
    if crash_safe:
        return {
            "movflags": FRAGMENTED_MOVFLAGS,
            "frag_duration": str(int(fragment_s * 1_000_000)),
            "flush_packets": "1",
        }
    return {"movflags": "faststart"}


@dataclass(frozen=True)
class Mp4SinkConfig:
    """Attributes:
    path: output file (``.mp4``, ``.m4v``, ``.mov`` or ``.mkv``).
    encoder: video encoder settings.
    overwrite: replace an existing file (else :class:`~streamer.sinks.OutputExistsError`).
    crash_safe: fragmented MP4 that survives SIGKILL (see the module docstring).
    fragment_s: longest fragment (seconds of video) in crash-safe mode.
    frame_rate: the input's average rate, a hint for the encoder's rate control (timing itself
        comes from each frame's pts); None: 30.
    audio_from: a file whose audio streams are copied unchanged (None: no audio).
    audio_start_s / audio_duration_s: the part of that audio to copy (same as the video's).
    """

    path: str | Path
    encoder: VideoEncoderConfig = field(default_factory=VideoEncoderConfig)
    overwrite: bool = False
    crash_safe: bool = True
    fragment_s: float = 1.0
    frame_rate: Fraction | float | None = None
    audio_from: str | Path | None = None
    audio_start_s: float = 0.0
    audio_duration_s: float | None = None

    def __post_init__(self) -> None:
        suffix = Path(self.path).suffix.lower()
        if suffix not in MP4_FAMILY | {".mkv"}:
            raise OutputError(
                f"output {self.path}: expected a .mp4, .m4v, .mov or .mkv file name "
                "(or a folder / %06d.png pattern for images)"
            )
        if not 0.05 <= self.fragment_s <= 60:
            raise ValueError(f"fragment_s must be in [0.05, 60], got {self.fragment_s}")
        if self.frame_rate is not None and not 0 < self.frame_rate <= 1000:
            raise ValueError(f"frame_rate must be in (0, 1000], got {self.frame_rate}")


def chroma_subsampling(pix_fmt: str) -> tuple[bool, bool]:
    """(vertical, horizontal): whether ``pix_fmt`` halves the chroma planes' height / width
    (then that side must be even). Read off a 2x2 frame: at 1 pixel the halved plane is
    rounded up to 1 and would look unsubsampled."""
    components = av.VideoFormat(pix_fmt, 2, 2).components
    if len(components) < 2:
        return False, False
    return components[1].height != 2, components[1].width != 2


class Mp4Sink(FrameSink):
    """Encodes frames into a video file; see the module docstring for the guarantees.

    The (temporary) file is created at construction (so an unwritable folder fails before any
    work); the video stream is set up at the first frame (its size is the frame's, padded to
    even sides when the pixel format needs it). ``close()`` flushes the encoder and finalizes
    the file; a sink that got no frame removes its temporary file and leaves the final name as
    it was.
    """

    def __init__(self, config: Mp4SinkConfig) -> None:
        self.config = config
        self.path = check_output_file(config.path, overwrite=config.overwrite)
        self.frames_written = 0
        self.padded_size: tuple[int, int] | None = None  # (height, width) when padded
        self._suffix = self.path.suffix.lower()
        self._stream: av.video.stream.VideoStream | None = None
        self._frame_size: tuple[int, int] | None = None
        self._pad: tuple[int, int] = (0, 0)
        self._last_pts: int | None = None
        self._step: int = 1
        self._time_base: Fraction | None = None
        self._complete = False
        self._closed = False
        self._yuv = False
        self._held: Frame | None = None  # the first frame, while the frame rate is unknown
        # Written under a temporary name in the same folder and renamed onto the final name
        # once the first bytes are on disk (see _publish): an existing output survives a run
        # that fails before that, and a kill after it leaves a playable file under the name.
        self.temp_path = temporary_name(self.path)
        self._published = False
        try:
            self.temp_path.write_bytes(b"")  # fails early if the folder is not writable
        except OSError as err:
            raise OutputError(f"cannot create output {self.path}: {err.strerror or err}") from err
        try:
            self._container = av.open(str(self.temp_path), "w", options=self._container_options())
        except av.FFmpegError as err:
            self.temp_path.unlink(missing_ok=True)
            raise OutputError(f"cannot open output {self.path}: {err}") from err
        self._audio: AudioCopy | None = None
        if config.audio_from is not None:
            try:
                self._audio = AudioCopy(
                    str(config.audio_from),
                    self._container,
                    start_s=config.audio_start_s,
                    duration_s=config.audio_duration_s,
                    allowed=MP4_AUDIO_CODECS if self._suffix in MP4_FAMILY else None,
                )
            except BaseException:
                self._abandon()
                raise

    def _container_options(self) -> dict[str, str]:
        return container_options(self._suffix, self.config.crash_safe, self.config.fragment_s)

    # -- frames -----------------------------------------------------------------------------
    def write(self, frame: Frame) -> None:
        if self._closed:
            raise RuntimeError("write() after close()")
        if self._stream is None:
            if self._held is None and self._rate_unknown(frame):
                self._held = frame  # the second frame tells the frame rate
                return
            first, self._held = self._held, None
            self._open_video(first or frame, second=frame if first is not None else None)
            if first is not None:
                self._encode(first)
        self._encode(frame)

    def _rate_unknown(self, frame: Frame) -> bool:
        """No frame-rate hint and none in the time base (1/12288 is not a rate)."""
        if self.config.frame_rate is not None:
            return False
        return frame.pts is None or frame.time_base is None or 1 / frame.time_base > 240

    def _encode(self, frame: Frame) -> None:
        image = frame.image
        if image.shape[:2] != self._frame_size:
            h, w = self._frame_size
            raise EncoderError(
                f"frame {frame.index} is {image.shape[1]}x{image.shape[0]} but the video is "
                f"{w}x{h}: one video has one size (set an output size with --size WxH)"
            )
        if self._pad != (0, 0):
            image = np.pad(image, ((0, self._pad[0]), (0, self._pad[1]), (0, 0)), mode="edge")
        pts = self._next_pts(frame)
        video_frame = av.VideoFrame.from_ndarray(image, format="rgb24")
        if self._yuv:  # convert here, with the matrix the stream is tagged with
            video_frame = video_frame.reformat(
                format=self.config.encoder.pix_fmt, dst_colorspace=Colorspace.ITU709
            )
            video_frame.colorspace = BT709
            video_frame.color_range = MPEG_RANGE
        video_frame.pts = pts
        video_frame.time_base = self._time_base
        try:
            for packet in self._stream.encode(video_frame):
                self._container.mux(packet)
        except (av.FFmpegError, OSError) as err:
            raise OutputError(f"writing {self.path} failed at frame {frame.index}: {err}") from err
        self.frames_written += 1
        self._publish()
        if self._audio is not None:
            self._audio.copy_until(float(pts * self._time_base) + AUDIO_LEAD_S)

    def end_of_stream(self) -> None:
        """The input was read to its end: copy its audio to the end too."""
        self._complete = True

    def _next_pts(self, frame: Frame) -> int:
        if frame.pts is None or frame.time_base != self._time_base:
            pts = 0 if self._last_pts is None else self._last_pts + self._step
            if frame.pts is not None:  # a new time base mid-stream: rescale
                pts = max(pts, round(frame.pts * frame.time_base / self._time_base))
        else:
            pts = frame.pts
        if self._last_pts is not None and pts <= self._last_pts:
            log.warning(
                "frame %d: pts %d does not increase (previous %d); using %d",
                frame.index,
                pts,
                self._last_pts,
                self._last_pts + 1,
            )
            pts = self._last_pts + 1
        self._last_pts = pts
        return pts

    def _open_video(self, frame: Frame, second: Frame | None = None) -> None:
        """Set up the video stream for ``frame``'s size and timing. The frame rate (the
        encoder's rate control, and the duration of the last frame) comes from the
        ``frame_rate`` hint, else the time base when it is a rate (1/30), else the gap to
        ``second``, else 30."""
        cfg = self.config
        height, width = frame.image.shape[:2]
        self._frame_size = (height, width)
        encoder = cfg.encoder
        sub_h, sub_w = chroma_subsampling(encoder.pix_fmt)
        pad_h = height % 2 if sub_h else 0
        pad_w = width % 2 if sub_w else 0
        self._pad = (pad_h, pad_w)
        if pad_h or pad_w:
            self.padded_size = (height + pad_h, width + pad_w)
            log.warning(
                "%s needs even sides: the %dx%d frames are padded to %dx%d (last row/column "
                "repeated); the top-left %dx%d is the stylized frame",
                encoder.pix_fmt,
                width,
                height,
                width + pad_w,
                height + pad_h,
                width,
                height,
            )
        rate = Fraction(cfg.frame_rate).limit_denominator(1_000_000) if cfg.frame_rate else None
        time_base = frame.time_base
        if time_base is None or frame.pts is None:
            time_base = 1 / (rate or Fraction(30))
        self._time_base = Fraction(time_base)
        if rate is None and 1 / self._time_base <= 240:
            rate = 1 / self._time_base
        if (
            rate is None
            and second is not None
            and second.pts is not None
            and second.time_base == self._time_base
            and second.pts > frame.pts
        ):
            rate = (1 / ((second.pts - frame.pts) * self._time_base)).limit_denominator(1_000_000)
        if rate is None:
            rate = Fraction(30)
        self._step = max(1, round(1 / (rate * self._time_base)))
        try:
            stream = self._container.add_stream(
                encoder.codec, rate=rate, options=encoder.codec_options()
            )
            stream.width = width + pad_w
            stream.height = height + pad_h
            stream.pix_fmt = encoder.pix_fmt
            self._yuv = encoder.pix_fmt.startswith(("yuv", "nv"))
            if self._yuv:  # tag what write() converts with: players then agree on colours
                context = stream.codec_context
                context.colorspace = context.color_primaries = context.color_trc = BT709
                context.color_range = MPEG_RANGE
            stream.codec_context.time_base = self._time_base
            stream.time_base = self._time_base
            stream.codec_context.open()  # bad options fail here, with the option named
        except (av.FFmpegError, ValueError) as err:
            raise EncoderError(
                f"cannot open encoder {encoder.codec} ({width + pad_w}x{height + pad_h}, "
                f"{encoder.pix_fmt}, options {encoder.codec_options()}): {err}"
            ) from err
        self._stream = stream

    # -- closing ----------------------------------------------------------------------------
    def close(self) -> None:
        """Flush the encoder, copy the remaining audio, finalize the file (idempotent)."""
        if self._closed:
            return
        if self._stream is None and self._held is not None:  # a one-frame video
            held, self._held = self._held, None
            try:
                self._open_video(held)
                self._encode(held)
            except BaseException:
                self._abandon()
                raise
        self._closed = True
        if self._stream is None:
            self._abandon()
            return
        try:
            for packet in self._stream.encode(None):
                self._container.mux(packet)
            if self._audio is not None:
                if self._complete:
                    self._audio.copy_until(None)
                else:
                    end = (self._last_pts + self._step) * self._time_base
                    self._audio.copy_until(float(end), inclusive=False)
        except (av.FFmpegError, OSError) as err:
            raise OutputError(f"finishing {self.path} failed: {err}") from err
        finally:
            if self._audio is not None:
                self._audio.close()
            try:
                self._container.close()
            except (av.FFmpegError, OSError) as err:
                raise OutputError(f"finalizing {self.path} failed: {err}") from err
            finally:
                if not self._published and sys.exc_info()[0] is not None:
                    self.temp_path.unlink(missing_ok=True)  # the old output stays
        self._publish(finished=True)
        log.debug("closed %s: %d frames", self.path, self.frames_written)

    def _publish(self, *, finished: bool = False) -> None:
        """Rename the temporary file onto the final name once output is on disk (crash-safe
        MP4: its first fragment; MKV: its first cluster), or when ``finished``. A regular MP4
        waits for ``finished``: the muxer reopens the file by name to move its header."""
        if self._published:
            return
        if not finished:
            if self._suffix in MP4_FAMILY and not self.config.crash_safe:
                return
            try:
                if self.temp_path.stat().st_size == 0:
                    return
            except OSError:
                return
        try:
            os.replace(self.temp_path, self.path)  # the open file keeps being written
        except OSError as err:
            raise OutputError(f"cannot move the new output onto {self.path}: {err}") from err
        self._published = True

    def _abandon(self) -> None:
        """No frame was written: close without a header and remove the temporary file (an
        older output under the final name is untouched)."""
        self._closed = True
        if self._audio is not None:
            self._audio.close()
        with contextlib.suppress(av.FFmpegError, OSError):
            self._container.close()
        if not self._published:
            self.temp_path.unlink(missing_ok=True)

    @property
    def audio_streams(self) -> int:
        return 0 if self._audio is None else len(self._audio.pairs)
