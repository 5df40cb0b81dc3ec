"""Settings of ``stylestream studio`` (:class:`StudioConfig`) and the serve-engine settings
derived from them (:func:`engine_config`)."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from adaattn_video.errors import StylestreamError
from adaattn_video.settings import StylizerSpec
from configkit.checks import positive
from configkit.convert import option
from streamer.live import endpoint_or_none
from streamer.serve.config import ServeConfig
from streamer.temporal.options import TemporalOptions, preset_option
from streamer.zeromq.endpoints import is_loopback_host

INSTALL_HINT = "pip install -e '.[studio]'"
DEFAULT_UPLOAD_BYTES = 10_000_000
DEFAULT_SIZE = (360, 640)  # (height, width)


class StudioConfigError(StylestreamError, ValueError):
    """A studio setting that cannot be used."""


class StudioDependencyError(StylestreamError, ImportError):
    """The optional studio packages (aiohttp, aiortc) are not installed."""


def require_studio_packages() -> None:
    """Raise one line naming the extra when aiohttp/aiortc are missing."""
    try:
        import aiohttp  # noqa: F401
        import aiortc  # noqa: F401
    except ImportError as err:
        raise StudioDependencyError(
            f"the studio needs aiohttp and aiortc ({err.name} is missing): {INSTALL_HINT}"
        ) from err


def _parse_mb(value: Any) -> int:
    """``--upload-mb`` (megabytes, a number > 0) -> bytes."""
    if isinstance(value, bool):
        raise ValueError(f"expected a number of megabytes, got {value!r}")
    megabytes = float(value)
    if not math.isfinite(megabytes) or megabytes <= 0:
        raise ValueError(f"expected a number of megabytes > 0, got {value!r}")
    return round(megabytes * 1e6)


def _check_ice_urls(urls: tuple[str, ...]) -> None:
    for url in urls:
        if not url.startswith(("stun:", "turn:", "turns:")) or len(url.split(":", 1)[1]) < 1:
            raise ValueError(f"expected a stun:HOST[:PORT] or turn:HOST[:PORT] URL, got {url!r}")


def _format_mb(value: int) -> float:
    return value / 1e6


@dataclass(frozen=True)
class StudioConfig:
    """Everything one studio run needs; every field has a ``stylestream studio`` flag / YAML
    key (the stylizer's keys are :class:`~adaattn_video.settings.StylizerSpec`'s).

    Attributes:
        host / port: where the page is served (port 0: a free one). A host beyond loopback
            needs ``allow_remote``, and then the page is served over HTTPS (``cert``/``key``,
            or a generated self-signed certificate) with an access ``token`` in the URL.
        stylizer: the one model (``weights``, ``untrained``, ``model``, ``device``,
            ``precision``, ``style_size``, ``max_memory``), the gallery (``styles``: default the
            bundled paintings; the first is the default style), the initial ``alpha`` and the
            ``size`` (height, width) frames are stylized (and sent back) at (None: 640x360).
        run_dir: where uploads and recordings go (created when first needed).
        max_batch: most frames (of all browsers together) per model call.
        zmq: also publish every connection's stylized frames here (topic = connection id).
        max_connections: browsers at once; more are refused.
        upload_bytes: largest accepted style upload (``upload_mb`` in flags and YAML); its
            pixels are limited by the one image reader
            (:data:`adaattn_video.image_io.MAX_IMAGE_PIXELS`).
        https / cert / key / token: see above (``https`` forces TLS on loopback too).
        ice_server / ice_username / ice_credential: STUN/TURN servers for WebRTC; none by
            default (the server offers its host addresses only; a remote deployment behind NAT
            needs them, see docs/studio.md).
        connect_timeout_s: a browser connection not "connected" by then is closed (its slot
            of ``max_connections`` freed).
        seconds: stop after this long (tests, benchmarks); None: until Ctrl-C.
        stamp_markers: copy the frame marker of each received frame into its stylized frame
            (``bench studio`` measures the round trip with it; it marks the picture).
        motion / temporal_preset: each connection's temporal settings (its own state; default
            off, as ``serve``'s streams: a stream with state is stylized alone, not in the
            shared batch) and ``--preset steady|fast`` (the command's ``prepare`` expands it).
    """

    host: str = option("127.0.0.1", "address to serve on", metavar="HOST")
    port: int = option(8080, "port (0: a free one)", metavar="PORT")
    stylizer: StylizerSpec = option(
        StylizerSpec(), "the model, the gallery, the initial alpha and the size", flatten=True
    )
    run_dir: str | None = option(
        None, "uploads and recordings (default: ./studio-YYYYMMDD-HHMMSS, made when needed)",
        metavar="DIR", role="output",
    )  # fmt: skip
    max_batch: int = option(8, "most frames (of all browsers) per model call", metavar="N")
    zmq: str | None = option(
        None, "also publish every connection's frames here (topic = connection id)",
        metavar="ENDPOINT", parse=endpoint_or_none,
    )  # fmt: skip
    max_connections: int = option(8, "browsers at once", metavar="N")
    upload_bytes: int = option(
        DEFAULT_UPLOAD_BYTES, "largest style upload in MB", flag="upload_mb", metavar="MB",
        parse=_parse_mb, format=_format_mb,
    )  # fmt: skip
    allow_remote: bool = option(
        False, "serve beyond loopback: HTTPS (--cert/--key or a generated self-signed "
        "certificate) and an access token in the URL",
    )  # fmt: skip
    https: bool = option(False, "HTTPS on loopback too")
    cert: str | None = option(None, "TLS certificate (with --key)", metavar="PEM", role="input")
    key: str | None = option(None, "TLS private key", metavar="PEM", role="input")
    token: str | None = option(None, "access token (default: random when remote)")
    ice_server: tuple[str, ...] = option(
        (), "a STUN/TURN server for WebRTC (stun:HOST:PORT, turn:HOST:PORT; repeat); default "
        "none: host addresses only, enough on one network", metavar="URL", repeat=True,
        check=_check_ice_urls,
    )  # fmt: skip
    ice_username: str | None = option(None, "TURN user name", metavar="USER")
    ice_credential: str | None = option(None, "TURN password", metavar="PASSWORD")
    connect_timeout_s: float = option(
        20.0, "close a browser connection that is not connected after S seconds (frees its slot)",
        metavar="S", check=positive,
    )  # fmt: skip
    seconds: float | None = option(None, "stop after S seconds", metavar="S")
    stamp_markers: bool = option(False, "draw each received frame's marker into its result")
    motion: TemporalOptions = option(
        TemporalOptions(), "each connection's temporal stability (docs/temporal.md)",
        flatten=True,
    )  # fmt: skip
    temporal_preset: str | None = preset_option()
    config_file: str | None = option(None, cli=False, role="input")

    def __post_init__(self) -> None:
        if not isinstance(self.stylizer, StylizerSpec):
            raise StudioConfigError(f"stylizer must be a StylizerSpec, got {self.stylizer!r}")
        if not 0 <= self.port <= 65535:
            raise StudioConfigError(f"port must be in [0, 65535], got {self.port}")
        if not is_loopback_host(self.host) and not self.allow_remote:
            raise StudioConfigError(
                f"--host {self.host} serves beyond this machine: add --allow-remote (then the "
                "page is HTTPS with an access token), or use --host 127.0.0.1 and ssh -L"
            )
        if (self.cert is None) != (self.key is None):
            raise StudioConfigError("give both --cert and --key (PEM files), or neither")
        for path in (self.cert, self.key):
            if path is not None and not Path(path).is_file():
                raise StudioConfigError(f"TLS file {path} does not exist (expected a PEM file)")
        if self.token is not None and (len(self.token) < 8 or not self.token.isascii()):
            raise StudioConfigError("the access token must be at least 8 ASCII characters")
        size = self.stylizer.size
        if size is None:
            object.__setattr__(self, "stylizer", replace(self.stylizer, size=DEFAULT_SIZE))
        elif not isinstance(size, tuple):
            raise StudioConfigError(
                f"size must be WIDTHxHEIGHT (the camera is cropped to its shape), got {size}"
            )
        height, width = self.size
        if height < 32 or width < 32 or height % 2 or width % 2:
            raise StudioConfigError(
                f"size must be at least 32x32 with even sides (video codecs), got {width}x{height}"
            )
        if self.stylizer.style_weights is not None:
            raise StudioConfigError(
                "style_weights: the studio mixes styles on the page (--style fills the gallery)"
            )
        if self.max_connections < 1 or self.max_batch < 1:
            raise StudioConfigError("max_connections and max_batch must be >= 1")
        if self.upload_bytes < 1024:
            raise StudioConfigError("the upload limit must allow at least 1 KiB")
        if self.seconds is not None and self.seconds <= 0:
            raise StudioConfigError(f"seconds must be > 0, got {self.seconds}")
        if self.run_dir is not None:
            run_dir = Path(self.run_dir).expanduser()
            if run_dir.exists() and not run_dir.is_dir():
                raise StudioConfigError(f"--run-dir {run_dir} is a file; give a folder")
        if not 0 < self.connect_timeout_s < math.inf:
            raise StudioConfigError(f"connect_timeout_s must be > 0, got {self.connect_timeout_s}")
        if (self.ice_username is None) != (self.ice_credential is None):
            raise StudioConfigError("give both --ice-username and --ice-credential, or neither")
        for style in self.stylizer.styles:
            if not Path(style).is_file():
                raise StudioConfigError(f"style image {style} does not exist")

    @property
    def size(self) -> tuple[int, int]:
        """(height, width) frames are stylized and sent back at."""
        size = self.stylizer.size
        assert isinstance(size, tuple)
        return size

    @property
    def remote(self) -> bool:
        return not is_loopback_host(self.host)

    @property
    def tls(self) -> bool:
        """HTTPS: always beyond loopback (browsers give the camera only to secure pages)."""
        return self.https or self.remote or self.cert is not None

    def resolved_run_dir(self) -> Path:
        """Absolute (the engine takes absolute style paths only)."""
        if self.run_dir is not None:
            return Path(self.run_dir).expanduser().resolve()
        return Path.cwd() / f"studio-{time.strftime('%Y%m%d-%H%M%S')}"


def ice_servers(config: StudioConfig) -> list[Any]:
    """The aiortc ``RTCIceServer`` list: exactly what the user configured, empty by default
    (aiortc's own default is a public STUN server, which the studio never contacts unasked)."""
    from aiortc import RTCIceServer

    return [
        RTCIceServer(urls=url, username=config.ice_username, credential=config.ice_credential)
        for url in config.ice_server
    ]


def engine_config(config: StudioConfig) -> ServeConfig:
    """The serve-engine settings: the studio's model, no streams at start (one per browser
    connection, added at run time), no control socket (the page is the control), ZeroMQ only
    when asked."""
    return ServeConfig(
        stylizer=config.stylizer,
        zmq=config.zmq,
        control=None,
        max_batch=config.max_batch,
        queue_frames=1,
        status_interval_s=0.0,
        allow_remote_bind=False,
        embedded=True,
    )
