"""Outputs that encode H.264 with PyAV: RTMP (FLV), RTSP publish, SRT (MPEG-TS) and HLS.

- RTMP/RTMPS: ``format="flv"`` straight to the URL, with the source's audio when it has some,
  else a silent AAC track (ingest services such as YouTube/Twitch and nginx-rtmp's HLS expect
  audio). SRT carries the source's audio too; RTSP and HLS are video only.
- RTSP: ``format="rtsp"`` (ANNOUNCE/RECORD to a server that accepts publishing, e.g.
  MediaMTX or GStreamer's RTSP server in RECORD mode), TCP interleaved by default, frame-threaded
  encoding (single-slice frames).
- SRT: PyAV's FFmpeg has no libsrt, so MPEG-TS written by PyAV is piped into Debian's
  ``srt-live-transmit file://con "srt://HOST:PORT?mode=caller"`` (package ``srt-tools``).
- HLS: a rolling playlist (``hls_time`` ~1 s segments, ``hls_list_size`` entries), segments
  and playlist written under temporary names and renamed (``hls_flags=temp_file``), old
  segments deleted, every segment starting on a keyframe (``independent_segments``): a reader
  never sees a half-written file.
"""

from __future__ import annotations

import contextlib
import shutil
import subprocess
from dataclasses import dataclass, field, replace
from fractions import Fraction
from pathlib import Path
from typing import Any

import av

from configkit.errors import StylestreamError
from streamer.frames import Frame, SourceInfo
from streamer.outputs.av_connection import AvConnection, EncoderSettings
from streamer.outputs.base import Connection, Output, OutputOptions
from streamer.outputs.spec import OutputSpec
from streamer.sources.audio_feed import AudioFeed

DEFAULT_FRAME_RATE = Fraction(30)
SRT_PROGRAM = "srt-live-transmit"


class MissingProgramError(StylestreamError, FileNotFoundError):
    """A program an output needs is not installed."""


@dataclass(frozen=True)
class HlsSettings:
    """``segment_s``: target segment length; ``list_size``: segments in the playlist."""

    segment_s: float = 1.0
    list_size: int = 6

    def __post_init__(self) -> None:
        if not 0.2 <= self.segment_s <= 10:
            raise ValueError(f"segment_s must be in [0.2, 10], got {self.segment_s}")
        if self.list_size < 2:
            raise ValueError(f"list_size must be >= 2, got {self.list_size}")


class AvOutput(Output):
    """An :class:`Output` whose connections are :class:`AvConnection` s (subclasses say how to
    open the container).

    ``carries_audio``: the kind passes the source's audio (:attr:`audio`, set by
    :meth:`~streamer.outputs.fanout.OutputSet.set_audio`) through; ``silent_audio``: without
    it, a silent track is added.
    """

    silent_audio = False
    carries_audio = False

    def __init__(
        self,
        spec: OutputSpec,
        options: OutputOptions | None = None,
        info: SourceInfo | None = None,
        encoder: EncoderSettings | None = None,
    ) -> None:
        super().__init__(spec, options, info)
        self.encoder = encoder or EncoderSettings()
        self.audio: AudioFeed | None = None

    @property
    def frame_rate(self) -> Fraction:
        return self.info.frame_rate or DEFAULT_FRAME_RATE

    def _timeouts(self) -> tuple[float, float]:
        return (self.options.io_timeout_s, self.options.io_timeout_s)

    def _open_container(self) -> Any:
        raise NotImplementedError

    def _connect(self, frame: Frame) -> Connection:
        return AvConnection(
            self._open_container,
            self.encoder,
            frame,
            self.frame_rate,
            silent_audio=self.silent_audio,
            audio=self.audio if self.carries_audio else None,
        )


class RtmpOutput(AvOutput):
    """FLV over RTMP(S), H.264 + the source's audio (or silent AAC)."""

    silent_audio = True
    carries_audio = True

    def _open_container(self) -> Any:
        return av.open(
            self.spec.url,
            "w",
            format="flv",
            options={"flvflags": "no_duration_filesize", "flush_packets": "1"},
            timeout=self._timeouts(),
        )


class RtspOutput(AvOutput):
    """RTSP publish (ANNOUNCE/RECORD), TCP unless the URL says ``?transport=udp``."""

    def __init__(
        self,
        spec: OutputSpec,
        options: OutputOptions | None = None,
        info: SourceInfo | None = None,
        encoder: EncoderSettings | None = None,
    ) -> None:
        super().__init__(
            spec, options, info, replace(encoder or EncoderSettings(), frame_threads=True)
        )

    def _open_container(self) -> Any:
        transport = self.spec.query.get("transport", "tcp")
        url = self.spec.url.split("?", 1)[0]
        return av.open(
            url,
            "w",
            format="rtsp",
            options={"rtsp_transport": transport, "flush_packets": "1"},
            timeout=self._timeouts(),
        )


def srt_command(spec: OutputSpec) -> list[str]:
    """``srt-live-transmit file://con srt://HOST:PORT?mode=caller&...`` for ``spec``."""
    query = dict(spec.query)
    query.setdefault("mode", "caller")
    text = "&".join(f"{k}={v}" for k, v in query.items())
    return [SRT_PROGRAM, "-q", "-a:no", "file://con", f"srt://{spec.host}:{spec.port}?{text}"]


class SrtOutput(AvOutput):
    """MPEG-TS over SRT through ``srt-live-transmit`` reading the TS from its stdin (with the
    source's audio when it has some)."""

    carries_audio = True

    def preflight(self) -> None:
        if shutil.which(SRT_PROGRAM) is None:
            raise MissingProgramError(
                f"output {self.spec}: SRT needs {SRT_PROGRAM}; apt-get install srt-tools"
            )

    def _connect(self, frame: Frame) -> Connection:
        proc = subprocess.Popen(
            srt_command(self.spec),
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

        def reap() -> None:
            if proc.stdin is not None:
                with contextlib.suppress(OSError):
                    proc.stdin.close()
            try:
                proc.wait(timeout=2)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

        def open_container() -> Any:
            return av.open(proc.stdin, "w", format="mpegts", options={"flush_packets": "1"})

        try:
            connection = AvConnection(
                open_container, self.encoder, frame, self.frame_rate, on_close=reap,
                audio=self.audio,
            )  # fmt: skip
        except Exception:
            reap()
            raise
        return _ProcessConnection(connection, proc)


@dataclass
class _ProcessConnection:
    """An :class:`AvConnection` whose bytes go to a helper process: a dead process = lost."""

    inner: AvConnection
    proc: subprocess.Popen[bytes] = field(repr=False)

    def send(self, frame: Frame) -> None:
        if self.proc.poll() is not None:
            raise ConnectionError(f"{SRT_PROGRAM} exited with code {self.proc.returncode}")
        self.inner.send(frame)

    def close(self) -> None:
        self.inner.close()


class HlsOutput(AvOutput):
    """A rolling HLS playlist in a folder (local files: no reconnect)."""

    def __init__(
        self,
        spec: OutputSpec,
        options: OutputOptions | None = None,
        info: SourceInfo | None = None,
        encoder: EncoderSettings | None = None,
        hls: HlsSettings | None = None,
    ) -> None:
        hls = hls or HlsSettings()
        encoder = encoder or EncoderSettings(gop_s=hls.segment_s)
        super().__init__(spec, options, info, encoder)
        self.hls = hls

    @property
    def playlist(self) -> Path:
        return Path(self.spec.path)

    def preflight(self) -> None:
        self.playlist.parent.mkdir(exist_ok=True)

    def _open_container(self) -> Any:
        folder = self.playlist.parent
        options = {
            "hls_time": f"{self.hls.segment_s:g}",
            "hls_list_size": str(self.hls.list_size),
            "hls_flags": "delete_segments+independent_segments+temp_file",
            "hls_segment_filename": str(folder / f"{self.playlist.stem}_%06d.ts"),
            "hls_delete_threshold": "2",
        }
        return av.open(str(self.playlist), "w", format="hls", options=options)


__all__ = [
    "AvOutput",
    "HlsOutput",
    "HlsSettings",
    "MissingProgramError",
    "RtmpOutput",
    "RtspOutput",
    "SrtOutput",
    "srt_command",
]
