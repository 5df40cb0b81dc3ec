"""Output URLs -> typed, validated :class:`OutputSpec` (checked before anything starts).

Accepted forms::

    rtmp://HOST[:PORT]/APP/KEY       FLV over RTMP (port 1935); rtmps:// where FFmpeg has TLS
    rtsp://HOST[:PORT]/PATH          RTSP publish (ANNOUNCE/RECORD), TCP unless ?transport=udp
    srt://HOST:PORT[?QUERY]          MPEG-TS over SRT (caller mode unless ?mode= says otherwise)
    hls:DIR | hls:DIR/NAME.m3u8      a rolling HLS playlist written into DIR
    ndi:NAME                         an NDI source called NAME
    virtualcam[:DEVICE]              a virtual webcam (v4l2loopback: /dev/videoN)

Credentials (``user:pass@``, an RTMP stream key, SRT ``passphrase``/``streamid``, any query
value of RTMP/RTSP) are secrets: :meth:`OutputSpec.redacted` masks them, and every message,
log line and status uses that form. A bad URL raises one :class:`OutputUrlError` line.
"""

from __future__ import annotations

import functools
import re
import urllib.parse
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType

from configkit.errors import StylestreamError

KINDS = ("rtmp", "rtmps", "rtsp", "srt", "hls", "ndi", "virtualcam")
NETWORK_KINDS = frozenset({"rtmp", "rtmps", "rtsp", "srt"})
DEFAULT_PORTS = {"rtmp": 1935, "rtmps": 443, "rtsp": 554}
MASK = "***"
_SECRET_QUERY_KEYS = frozenset({"passphrase", "streamid", "key", "token", "password", "pass"})
_NDI_NAME = re.compile(r"^[\w .()\-]{1,100}$")
_DEVICE = re.compile(r"^/dev/video\d+$")
FORMS = (
    "rtmp://HOST[:PORT]/APP/KEY, rtmps://..., rtsp://HOST[:PORT]/PATH, srt://HOST:PORT[?...], "
    "hls:DIR, ndi:NAME, virtualcam[:/dev/videoN]"
)


class OutputUrlError(StylestreamError, ValueError):
    """An output URL is malformed or names something this build cannot do."""


@dataclass(frozen=True, repr=False)
class OutputSpec:
    """One output, parsed and validated.

    Attributes:
        kind: one of :data:`KINDS`.
        url: the URL as given (may hold secrets: never print it; use :meth:`redacted`).
        host / port: network outputs' server (None otherwise).
        path: the URL path (RTMP ``/APP/KEY``, RTSP ``/PATH``), the HLS playlist file, or "".
        query: the URL's query parameters (SRT's options go to srt-live-transmit).
        name: the NDI source name, or the virtual camera device ("" = the first free one).
    """

    kind: str
    url: str = field(repr=False)
    host: str | None = None
    port: int | None = None
    path: str = ""
    query: Mapping[str, str] = field(default_factory=dict, repr=False)
    name: str = ""

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise OutputUrlError(f"unknown output kind {self.kind!r}; expected one of {KINDS}")
        object.__setattr__(self, "query", MappingProxyType(dict(self.query)))

    @property
    def network(self) -> bool:
        """True for outputs that talk to a server (they reconnect with backoff)."""
        return self.kind in NETWORK_KINDS

    @property
    def hls_dir(self) -> Path:
        """The HLS output folder (only for ``kind == "hls"``)."""
        return Path(self.path).parent

    def redacted(self) -> str:
        """The URL with every credential masked: safe for messages, logs and status."""
        return redact(self.url)

    def scrub(self, text: str) -> str:
        """``text`` (e.g. an FFmpeg error) with this URL and each of its secrets masked."""
        text = str(text).replace(self.url, self.redacted())
        parts = urllib.parse.urlsplit(self.url) if "://" in self.url else None
        secrets = [] if parts is None else [parts.password, parts.username]
        if self.kind in ("rtmp", "rtmps"):
            secrets.append(self.path.rstrip("/").rpartition("/")[2])
        secrets += [
            v for k, v in self.query.items() if self.kind != "srt" or k in _SECRET_QUERY_KEYS
        ]
        for secret in secrets:
            if secret and len(secret) >= 3:
                text = text.replace(secret, MASK)
        return text

    def __str__(self) -> str:
        return self.redacted()

    def __repr__(self) -> str:
        return f"OutputSpec(kind={self.kind!r}, url={self.redacted()!r})"


def redact(url: str) -> str:
    """``url`` with user info, stream keys and secret query values replaced by ``***``.

    Works on malformed URLs too (error messages need it before validation succeeded).
    """
    text = str(url)
    if "://" not in text:
        return text
    scheme, _, rest = text.partition("://")
    scheme = scheme.lower()
    hostpart, slash, tail = rest.partition("/")
    if "?" in hostpart and not slash:
        hostpart, _, query0 = hostpart.partition("?")
        tail, slash = "?" + query0, ""
    if "@" in hostpart:
        hostpart = MASK + "@" + hostpart.rpartition("@")[2]
    path, qmark, query = tail.partition("?")
    if scheme in ("rtmp", "rtmps"):
        parts = path.split("/")
        if len(parts) >= 2 and parts[-1]:
            parts[-1] = MASK  # the stream key
        path = "/".join(parts)
    if qmark:
        pairs = []
        for item in query.split("&"):
            key, eq, value = item.partition("=")
            secret = scheme != "srt" or key.lower() in _SECRET_QUERY_KEYS
            pairs.append(f"{key}{eq}{MASK if eq and secret else value}")
        query = "&".join(pairs)
    return f"{scheme}://{hostpart}{slash}{path}{qmark}{query}"


@functools.cache
def protocol_available(protocol: str) -> bool:
    """Whether the linked FFmpeg knows ``protocol`` (``rtmps``: needs TLS; ``srt``: libsrt).

    PyAV does not list protocols; opening ``PROTO://127.0.0.1:1`` fails at once either with
    "Protocol not found" (not built in) or with a refused connection (built in).
    """
    import av

    try:
        av.open(f"{protocol}://127.0.0.1:1/a/b", "r", timeout=1).close()
    except av.error.ProtocolNotFoundError:
        return False
    except Exception:
        return True
    return True


def parse_output(url: str) -> OutputSpec:
    """Parse and validate one output URL (no connection is made).

    Raises:
        OutputUrlError: unknown scheme, missing host, port out of 1-65535, missing path, a
            protocol this FFmpeg build lacks. The message shows only :func:`redact`'s form.
    """
    text = str(url).strip()
    if not text:
        raise OutputUrlError(f"empty output URL; expected one of: {FORMS}")
    if any(ord(c) < 32 or ord(c) == 127 for c in text):  # a message must stay one line
        raise OutputUrlError("an output URL must not contain control characters (newline, tab)")
    lowered = text.lower()
    if lowered == "virtualcam" or lowered.startswith("virtualcam:"):
        return _virtualcam(text)
    if lowered.startswith("hls:"):
        return _hls(text)
    if lowered.startswith("ndi:"):
        return _ndi(text)
    scheme = lowered.partition("://")[0] if "://" in lowered else ""
    if scheme not in NETWORK_KINDS:  # a mistyped scheme's path may still be a key: hidden
        shown = f"{scheme}://{_hostname(text)}/..." if scheme else text
        raise OutputUrlError(f"unknown output {shown!r}; expected one of: {FORMS}")
    return _network(text, scheme)


def _hostname(text: str) -> str:
    """The host of a URL-shaped text, or '' (an unclosed ``[`` is no URL at all)."""
    try:
        return urllib.parse.urlsplit(text).hostname or ""
    except ValueError:
        return ""


def parse_outputs(urls: str | Iterable[str]) -> tuple[OutputSpec, ...]:
    """Parse every URL of a list (one string: one URL); the same URL twice is refused (two
    publishers on one key fight each other). Raises :class:`OutputUrlError` (one line)."""
    if isinstance(urls, str):
        urls = [urls]
    specs = tuple(parse_output(url) for url in urls)
    seen: set[str] = set()
    for spec in specs:
        if spec.url in seen:
            raise OutputUrlError(f"output {spec} is given twice")
        seen.add(spec.url)
    return specs


def _network(text: str, scheme: str) -> OutputSpec:
    shown = redact(text)
    try:
        parts = urllib.parse.urlsplit(text)
    except ValueError as err:  # "Invalid IPv6 URL": an unclosed [
        raise OutputUrlError(f"output {shown} is not a valid URL ({err})") from None
    try:
        port = parts.port
    except ValueError:
        raise OutputUrlError(f"output {shown}: the port must be a number in 1-65535") from None
    host = parts.hostname
    if not host:
        raise OutputUrlError(f"output {shown} has no host; e.g. {scheme}://127.0.0.1/...")
    if port is None:
        if scheme == "srt":
            raise OutputUrlError(f"output {shown} needs a port: srt://HOST:PORT")
        port = DEFAULT_PORTS[scheme]
    if not 1 <= port <= 65535:
        raise OutputUrlError(f"output {shown}: the port must be in 1-65535, got {port}")
    query = dict(urllib.parse.parse_qsl(parts.query, keep_blank_values=True))
    path = parts.path
    if scheme in ("rtmp", "rtmps"):
        segments = [s for s in path.split("/") if s]
        if len(segments) < 2:
            raise OutputUrlError(
                f"output {shown} needs an application and a stream key: {scheme}://HOST/APP/KEY"
            )
        if scheme == "rtmps" and not protocol_available("rtmps"):
            raise OutputUrlError(
                f"output {shown}: this FFmpeg build (PyAV's) has no TLS, so no rtmps://; "
                "use rtmp:// or a PyAV built against an FFmpeg with TLS (gnutls/openssl)"
            )
    elif scheme == "rtsp":
        if not path.strip("/"):
            raise OutputUrlError(f"output {shown} needs a path: rtsp://HOST:PORT/PATH")
        if query.get("transport", "tcp") not in ("tcp", "udp"):
            raise OutputUrlError(f"output {shown}: transport must be tcp or udp")
    elif scheme == "srt":
        if path.strip("/"):
            raise OutputUrlError(f"output {shown}: SRT takes no path; use ?streamid=...")
        if query.get("mode", "caller") not in ("caller", "listener", "rendezvous"):
            raise OutputUrlError(f"output {shown}: mode must be caller, listener or rendezvous")
    return OutputSpec(kind=scheme, url=text, host=host, port=port, path=path, query=query)


def _hls(text: str) -> OutputSpec:
    target = text[4:].strip()
    if not target:
        raise OutputUrlError("output hls: needs a folder: hls:DIR or hls:DIR/index.m3u8")
    path = Path(target).expanduser()
    if path.suffix != ".m3u8":
        path = path / "index.m3u8"
    folder = path.parent
    if folder.exists() and not folder.is_dir():
        raise OutputUrlError(f"output {text}: {folder} exists and is not a folder")
    if not folder.exists() and not folder.parent.is_dir():
        raise OutputUrlError(f"output {text}: the folder above {folder} does not exist")
    return OutputSpec(kind="hls", url=text, path=str(path))


def _ndi(text: str) -> OutputSpec:
    name = text[4:].strip()
    if not _NDI_NAME.match(name):
        raise OutputUrlError(
            f"output {text!r}: an NDI name is 1-100 letters, digits, spaces or . _ - ( )"
        )
    return OutputSpec(kind="ndi", url=text, name=name)


def _virtualcam(text: str) -> OutputSpec:
    device = text.partition(":")[2].strip()
    if device and not _DEVICE.match(device):
        raise OutputUrlError(f"output {text!r}: the device must look like /dev/video10")
    return OutputSpec(kind="virtualcam", url=text, name=device)


__all__ = [
    "KINDS",
    "NETWORK_KINDS",
    "OutputSpec",
    "OutputUrlError",
    "parse_output",
    "parse_outputs",
    "protocol_available",
    "redact",
]
