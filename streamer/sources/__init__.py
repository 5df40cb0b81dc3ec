"""Frame sources: where frames come from, and the one function that opens any INPUT.

Every source derives from :class:`streamer.frames.FrameSource` (``live``, ``open``/``close``,
``__iter__``, ``info()``, ``counters()``): files and image sequences are not live (the pipeline
blocks and loses nothing); cameras, network streams and files paced in real time are (the
pipeline drops the oldest frame when stylizing is slower than the source).

:func:`open_source` turns a user's INPUT string into a source; :class:`LiveOptions` carries
the webcam / network / pacing settings, so ``render``, ``live`` and the benchmarks accept the
same INPUT syntax with the same options:

- ``rtsp://``, ``rtmp://``, ``http(s)://``, ``hls://``, ``srt://``, ``udp://``... ->
  :class:`~streamer.sources.network.NetworkSource`;
- ``0``, ``12``, ``/dev/videoN`` -> :class:`~streamer.sources.camera.CameraSource`;
- ``lavfi:GRAPH`` -> an FFmpeg lavfi test source (``lavfi:testsrc2=size=320x240:rate=30``);
- a folder, ``%06d`` pattern or glob -> :class:`~streamer.sources.images.ImageSequenceSource`;
- any other string -> :class:`~streamer.sources.file.FileSource` (a file PyAV opens).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any, Literal

from adaattn_video.errors import StylestreamError
from configkit.checks import non_negative, positive
from configkit.convert import check_fields, option
from streamer.frames import FrameSource

LAVFI_PREFIX = "lavfi:"
NETWORK_SCHEMES = (
    "rtsp",
    "rtsps",
    "rtmp",
    "rtmps",
    "http",
    "https",
    "hls",
    "srt",
    "udp",
    "rtp",
    "tcp",
)
_DEVICE_NODE = re.compile(r"^/dev/video(\d+)$")


class SourceError(StylestreamError, ValueError):
    """An input cannot be opened or read (not a video, no video stream, bad option)."""


class SourceNotFoundError(StylestreamError, FileNotFoundError):
    """An input file or folder does not exist."""


class InputDamagedError(SourceError):
    """An input broke off or holds undecodable data part-way through.

    Raised by a source's iterator AFTER it has yielded every frame it could decode before the
    damage, so a pipeline renders those frames first. ``frames_read`` says how many there were.
    """

    def __init__(self, message: str, frames_read: int) -> None:
        super().__init__(message)
        self.frames_read = frames_read


def is_network_url(uri: str) -> bool:
    """``rtsp://...`` and the other :data:`NETWORK_SCHEMES`: a live network stream."""
    scheme, sep, _ = uri.partition("://")
    return bool(sep) and scheme.lower() in NETWORK_SCHEMES


def is_camera(uri: str) -> bool:
    """``"0"``, ``"12"`` or ``/dev/videoN``: a webcam (not a file named "0")."""
    return uri.isdigit() or _DEVICE_NODE.match(uri) is not None


def is_image_sequence(uri: str) -> bool:
    """A folder, a printf pattern (``frames/%06d.png``) or a glob (``frames/*.png``)."""
    if uri.startswith(LAVFI_PREFIX) or Path(uri).is_file():
        return False
    return Path(uri).is_dir() or "%" in Path(uri).name or any(c in uri for c in "*?[")


def _capture_size(value: Any) -> tuple[int, int] | None:
    from adaattn_video.settings import parse_wh

    return None if value is None else parse_wh(value)


def _check_capture_size(size: tuple[int, int]) -> None:
    if len(size) != 2 or min(size) < 16:
        raise ValueError(f"must be WxH with sides >= 16 pixels for a capture size, got {size}")


def _format_wh(size: tuple[int, int]) -> str:
    return f"{size[1]}x{size[0]}"


@dataclass(frozen=True)
class LiveOptions:
    """How live inputs are read (and whether a file is paced like one): the one declaration of
    the source options, flattened into ``live``'s and each ``serve`` stream's config and handed
    unchanged to :func:`open_source`.

    Attributes:
        realtime: pace a file / image sequence at its own frame rate; it then is a live source
            (drops frames when stylizing is slower). Cameras and streams are always live.
        capture_size: (height, width) to request from a webcam (None: its default).
        capture_fps: frame rate to request from a webcam (None: its default).
        fourcc: webcam pixel format to request, e.g. ``"MJPG"`` (None: its default).
        transport: RTSP transport, ``"tcp"`` or ``"udp"``.
        open_timeout_s: longest wait to open a camera / connect to a stream.
        read_timeout_s: a camera or stream that delivers nothing this long has stopped (a camera
            fails; a stream is in an outage and reconnects).
        give_up_after_s: a stream outage longer than this ends the run with an error.
        during_outage: ``"pause"`` (publish nothing) or ``"repeat"`` (the last frame again).
        end_of_stream: a stream the server ends: ``"reconnect"`` or ``"stop"``.
        ffmpeg_options: extra FFmpeg options for a network stream (strings; YAML only).
    """

    realtime: bool = option(
        False, "play a FILE at its own frame rate, dropping frames like a camera (default: "
        "every frame, as fast as the model goes)",
    )  # fmt: skip
    capture_size: tuple[int, int] | None = option(
        None, "webcam: requested capture size", metavar="WxH", parse=_capture_size,
        format=_format_wh, check=_check_capture_size,
    )  # fmt: skip
    capture_fps: float | None = option(None, "webcam: requested rate", metavar="F", check=positive)
    fourcc: str | None = option(None, "webcam: pixel format, e.g. MJPG", metavar="CODE")
    transport: Literal["tcp", "udp"] = option("tcp", "RTSP transport")
    open_timeout_s: float = option(
        10.0, "give up opening a source after S seconds", metavar="S", check=positive
    )
    read_timeout_s: float = option(
        5.0, "no data for this long = an outage (network) or an error (webcam)", metavar="S",
        check=positive,
    )  # fmt: skip
    give_up_after_s: float = option(
        60.0, "end with an error after an outage this long (network sources)", metavar="S",
        check=non_negative,
    )  # fmt: skip
    during_outage: Literal["pause", "repeat"] = option(
        "pause", "publish nothing, or repeat the last frame, while reconnecting"
    )
    end_of_stream: Literal["reconnect", "stop"] = option(
        "reconnect", "when a network stream ends: reconnect (live) or stop (VOD)"
    )
    ffmpeg_options: Mapping[str, str] = option(
        help="extra FFmpeg demuxer options", default_factory=dict, cli=False
    )

    def __post_init__(self) -> None:
        check_fields(self, SourceError)
        for name, choices in (("transport", ("tcp", "udp")), ("during_outage", ("pause", "repeat")),
                              ("end_of_stream", ("reconnect", "stop"))):  # fmt: skip
            if getattr(self, name) not in choices:
                raise SourceError(
                    f"{name} must be {' or '.join(map(repr, choices))}, got {getattr(self, name)!r}"
                )
        object.__setattr__(
            self,
            "ffmpeg_options",
            MappingProxyType({str(k): str(v) for k, v in self.ffmpeg_options.items()}),
        )


def open_source(
    uri: str,
    *,
    start_s: float = 0.0,
    duration_s: float | None = None,
    fps: float | None = None,
    live: LiveOptions | None = None,
) -> FrameSource:
    """The source for a user's INPUT string (not yet opened: use it in a ``with`` block).

    ``start_s`` / ``duration_s`` select a part of a file or image sequence (in the input's own
    presentation time; live inputs have none). ``fps``: frame rate of an image sequence
    (default 30). ``live``: webcam / network / pacing settings (default :class:`LiveOptions`).

    Raises:
        SourceError: an option does not apply to this kind of input, or has a bad value.
    """
    live = live if live is not None else LiveOptions()
    if is_network_url(uri) or is_camera(uri):
        _check_live_input(uri, start_s, duration_s, fps)
        try:
            return _network_source(uri, live) if is_network_url(uri) else _camera(uri, live)
        except ValueError as err:
            if isinstance(err, StylestreamError):
                raise
            raise SourceError(f"{uri}: {err}") from err
    if is_image_sequence(uri):
        from streamer.sources.images import ImageSequenceConfig, ImageSequenceSource

        return ImageSequenceSource(
            ImageSequenceConfig(
                uri,
                fps=30.0 if fps is None else fps,
                start_s=start_s,
                duration_s=duration_s,
                realtime=live.realtime,
            )
        )
    from streamer.sources.file import FileSource, FileSourceConfig

    if fps is not None:
        raise SourceError(
            f"fps={fps} applies to image sequences only; {uri} keeps its own frame timing"
        )
    is_lavfi = uri.startswith(LAVFI_PREFIX)
    return FileSource(
        FileSourceConfig(
            uri[len(LAVFI_PREFIX) :] if is_lavfi else uri,
            format="lavfi" if is_lavfi else None,
            start_s=start_s,
            duration_s=duration_s,
            realtime=live.realtime,
        )
    )


def _network_source(uri: str, live: LiveOptions) -> FrameSource:
    """A network stream (:data:`NETWORK_SCHEMES`) with ``live``'s timeouts and outage settings."""
    from streamer.sources.network import NetworkSource, NetworkSourceConfig

    return NetworkSource(
        NetworkSourceConfig(
            uri,
            transport=live.transport,
            open_timeout_s=live.open_timeout_s,
            read_timeout_s=live.read_timeout_s,
            give_up_after_s=live.give_up_after_s,
            during_outage=live.during_outage,
            end_of_stream=live.end_of_stream,
            ffmpeg_options=dict(live.ffmpeg_options),
        )
    )


def _camera(uri: str, live: LiveOptions) -> FrameSource:
    """A webcam with ``live``'s capture size, rate, FOURCC and timeouts."""
    from streamer.sources.camera import CameraConfig, CameraSource

    height, width = live.capture_size or (None, None)
    return CameraSource(
        CameraConfig(
            uri,
            width=width,
            height=height,
            fps=live.capture_fps,
            fourcc=live.fourcc,
            open_timeout_s=live.open_timeout_s,
            read_timeout_s=live.read_timeout_s,
        )
    )


def _check_live_input(uri: str, start_s: float, duration_s: float | None, fps: float | None):
    """Live inputs have no start or duration to seek to, and their own frame rate."""
    if start_s:
        raise SourceError(f"--start does not apply to the live input {uri}")
    if duration_s is not None:
        raise SourceError(
            f"--duration does not apply to the live input {uri}; stop a live run with "
            "--seconds or Ctrl-C"
        )
    if fps is not None:
        raise SourceError(
            f"fps={fps} applies to image sequences only; {uri} has its own rate "
            "(a webcam's is requested with --capture-fps)"
        )


__all__ = [
    "LAVFI_PREFIX",
    "NETWORK_SCHEMES",
    "InputDamagedError",
    "LiveOptions",
    "SourceError",
    "SourceNotFoundError",
    "is_camera",
    "is_image_sequence",
    "is_network_url",
    "open_source",
]
