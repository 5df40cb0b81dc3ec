"""Settings of ``stylestream studio`` (:class:`StudioConfig`) and the serve-engine settings
derived from them (:func:`engine_config`)."""

from __future__ import annotations

import ipaddress
import time
from dataclasses import dataclass, replace
from pathlib import Path

from adaattn_video.errors import StylestreamError
from adaattn_video.stylizer import PRECISIONS, check_alpha
from streamer.serve.config import ServeConfig

INSTALL_HINT = "pip install -e '.[studio]'"
DEFAULT_UPLOAD_BYTES = 10_000_000
DEFAULT_UPLOAD_PIXELS = 40_000_000


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


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True)
class StudioConfig:
    """Attributes:
    host / port: where the page is served (port 0: a free one). A host beyond loopback needs
        ``allow_remote``, and then the page is served over HTTPS (``cert``/``key``, or a
        generated self-signed certificate) with an access ``token`` in the URL.
    styles: the gallery's style images (default: the bundled ones); the first is the default.
    size: (height, width) frames are stylized (and sent back) at.
    alpha: initial content strength in [0, 1].
    run_dir: where uploads and recordings go (created when first needed).
    weights / untrained / device / precision / style_size / max_batch: the one model.
    zmq: also publish every connection's stylized frames here (topic = connection id), or None.
    max_connections: browsers at once; more are refused.
    upload_bytes / upload_pixels: largest accepted style upload (file size, decoded pixels).
    https / cert / key / token: see above (``https`` forces TLS on loopback too).
    seconds: stop after this long (tests, benchmarks); None: until Ctrl-C.
    stamp_markers: copy the frame marker of each received frame into its stylized frame
        (``bench studio`` measures the round trip with it; it marks the picture).
    """

    host: str = "127.0.0.1"
    port: int = 8080
    styles: tuple[str, ...] = ()
    size: tuple[int, int] = (360, 640)
    alpha: float = 1.0
    run_dir: str | None = None
    weights: str | None = None
    untrained: bool = False
    device: str = "auto"
    precision: str = "auto"
    style_size: int | None = 512
    max_batch: int = 8
    zmq: str | None = None
    max_connections: int = 8
    upload_bytes: int = DEFAULT_UPLOAD_BYTES
    upload_pixels: int = DEFAULT_UPLOAD_PIXELS
    allow_remote: bool = False
    https: bool = False
    cert: str | None = None
    key: str | None = None
    token: str | None = None
    seconds: float | None = None
    stamp_markers: bool = False

    def __post_init__(self) -> None:
        if not 0 <= self.port <= 65535:
            raise StudioConfigError(f"port must be in [0, 65535], got {self.port}")
        if not is_loopback(self.host) and not self.allow_remote:
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
        height, width = self.size
        if height < 32 or width < 32 or height % 2 or width % 2:
            raise StudioConfigError(
                f"size must be at least 32x32 with even sides (video codecs), got {width}x{height}"
            )
        try:
            check_alpha(self.alpha)
        except ValueError as err:
            raise StudioConfigError(str(err)) from err
        if self.untrained and self.weights is not None:
            raise StudioConfigError("give either --weights or --untrained, not both")
        if self.precision != "auto" and self.precision not in PRECISIONS:
            raise StudioConfigError(
                f"precision must be auto or one of {sorted(PRECISIONS)}, got {self.precision!r}"
            )
        if self.max_connections < 1 or self.max_batch < 1:
            raise StudioConfigError("max_connections and max_batch must be >= 1")
        if self.upload_bytes < 1024 or self.upload_pixels < 64 * 64:
            raise StudioConfigError("upload limits must allow at least 1 KiB and 64x64 pixels")
        if self.seconds is not None and self.seconds <= 0:
            raise StudioConfigError(f"seconds must be > 0, got {self.seconds}")
        for style in self.styles:
            if not Path(style).is_file():
                raise StudioConfigError(f"style image {style} does not exist")

    @property
    def remote(self) -> bool:
        return not is_loopback(self.host)

    @property
    def tls(self) -> bool:
        """HTTPS: always beyond loopback (browsers give the camera only to secure pages)."""
        return self.https or self.remote or self.cert is not None

    def resolved_run_dir(self) -> Path:
        """Absolute (the engine takes absolute style paths only)."""
        if self.run_dir is not None:
            return Path(self.run_dir).expanduser().resolve()
        return Path.cwd() / f"studio-{time.strftime('%Y%m%d-%H%M%S')}"


def engine_config(config: StudioConfig) -> ServeConfig:
    """The serve-engine settings: no streams at start (one per browser connection, added at run
    time), no control socket (the page is the control), ZeroMQ only when asked."""
    return _StudioEngineConfig(
        weights=config.weights,
        untrained=config.untrained,
        device=config.device,
        precision=config.precision,
        style_size=config.style_size,
        zmq=config.zmq,
        control=None,
        max_batch=config.max_batch,
        queue_frames=1,
        status_interval_s=0.0,
        allow_remote_bind=False,
    )


@dataclass(frozen=True)
class _StudioEngineConfig(ServeConfig):
    """A :class:`ServeConfig` that may start with no streams and no control endpoint (the
    studio adds a stream per browser connection). Every other setting is checked as for
    ``serve``, by checking a copy that has a placeholder control endpoint."""

    def __post_init__(self) -> None:
        if self.streams or self.control is not None:
            super().__post_init__()
        else:
            replace(self, control="tcp://127.0.0.1:5556")
