"""Settings and errors of a network source (:mod:`streamer.sources.network`): how to open a
stream and keep reading it, checked once at construction, and the counters its status shows."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from adaattn_video.errors import StylestreamError
from streamer.sources import NETWORK_SCHEMES, is_network_url


class StreamOpenError(StylestreamError, ConnectionError):
    """A network stream could not be opened (unreachable, refused, timed out, not a video)."""


class StreamLostError(StylestreamError, ConnectionError):
    """A network stream dropped and did not come back within the give-up time."""


@dataclass(frozen=True)
class NetworkSourceConfig:
    """How to read and keep reading a network stream.

    Attributes:
        url: ``rtsp://host:8554/path``, ``rtmp://...``, ``https://.../index.m3u8``, ``srt://...``.
        transport: RTSP lower transport, ``"tcp"`` (default, reliable) or ``"udp"``.
        open_timeout_s: longest wait to connect and read the stream's header.
        read_timeout_s: longest wait for data once streaming; longer = an outage.
        reconnect: reconnect after an outage (else the first outage ends the stream).
        give_up_after_s: an outage longer than this ends the stream with an error.
        backoff_initial_s / backoff_max_s: wait between reconnect attempts, doubling from the
            first to the second.
        end_of_stream: what the server ending the stream means: ``"reconnect"`` (an outage:
            live cameras and relays restart) or ``"stop"`` (the end: recordings, VOD).
        during_outage: ``"pause"`` (publish nothing) or ``"repeat"`` (repeat the last frame at
            the stream's frame rate, so viewers see a still picture instead of a stall).
        max_queue_frames: newest decoded frames kept for the consumer (1 = lowest latency).
        low_latency: small probe, low-delay decoding, slice (not frame) threading.
        ffmpeg_options: extra demuxer/protocol options passed to FFmpeg as they are.
    """

    url: str
    transport: str = "tcp"
    open_timeout_s: float = 10.0
    read_timeout_s: float = 5.0
    reconnect: bool = True
    give_up_after_s: float = 60.0
    backoff_initial_s: float = 0.5
    backoff_max_s: float = 8.0
    end_of_stream: str = "reconnect"
    during_outage: str = "pause"
    max_queue_frames: int = 1
    low_latency: bool = True
    ffmpeg_options: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not is_network_url(self.url):
            raise ValueError(
                f"expected a network URL ({', '.join(s + '://' for s in NETWORK_SCHEMES)}), "
                f"got {self.url!r}"
            )
        if self.transport not in ("tcp", "udp"):
            raise ValueError(f"transport must be 'tcp' or 'udp', got {self.transport!r}")
        for name in ("open_timeout_s", "read_timeout_s", "backoff_initial_s"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be > 0, got {getattr(self, name)}")
        if self.backoff_max_s < self.backoff_initial_s:
            raise ValueError(
                f"backoff_max_s must be >= backoff_initial_s ({self.backoff_initial_s}), "
                f"got {self.backoff_max_s}"
            )
        if self.give_up_after_s < 0:
            raise ValueError(f"give_up_after_s must be >= 0, got {self.give_up_after_s}")
        if self.end_of_stream not in ("reconnect", "stop"):
            raise ValueError(
                f"end_of_stream must be 'reconnect' or 'stop', got {self.end_of_stream!r}"
            )
        if self.during_outage not in ("pause", "repeat"):
            raise ValueError(
                f"during_outage must be 'pause' or 'repeat', got {self.during_outage!r}"
            )
        if self.max_queue_frames < 1:
            raise ValueError(f"max_queue_frames must be >= 1, got {self.max_queue_frames}")
        object.__setattr__(
            self,
            "ffmpeg_options",
            MappingProxyType({str(k): str(v) for k, v in self.ffmpeg_options.items()}),
        )

    @property
    def scheme(self) -> str:
        return self.url.split("://", 1)[0].lower()

    def av_options(self) -> dict[str, str]:
        """The FFmpeg options ``av.open`` gets."""
        options: dict[str, str] = {}
        if self.scheme in ("rtsp", "rtsps"):
            options["rtsp_transport"] = self.transport
        if self.low_latency:
            # Small probe = fast open (~0.1 s instead of ~1.5 s). NOT fflags=nobuffer: it
            # discards the packets read while probing, i.e. the first keyframe.
            options.update(analyzeduration="200000", probesize="131072", max_delay="500000")
        options.update(self.ffmpeg_options)
        return options


@dataclass
class NetworkStats:
    """Counters a status line reports (read from any thread; written by the reader only)."""

    frames_read: int = 0
    outages: int = 0
    reconnects: int = 0
    outage_time_s: float = 0.0
    connected: bool = False
    last_error: str | None = None
