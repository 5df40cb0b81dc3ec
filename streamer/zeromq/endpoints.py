"""ZeroMQ endpoint checks shared by the publisher, the control server and the clients.

Servers bind to loopback unless the user explicitly asks for more: a stylized webcam or a
control port that changes what is published should not appear on a network by accident.
"""

from __future__ import annotations

import ipaddress
import re

import zmq

from adaattn_video.errors import StylestreamError

_TCP = re.compile(r"^tcp://(?P<host>\[[^\]]+\]|[^:\[\]]+):(?P<port>\*|\d+)$")
_LOOPBACK_NAMES = {"localhost", "lo"}


class EndpointError(StylestreamError, ValueError):
    """An endpoint string is malformed, or binds beyond loopback without permission."""


class BindError(StylestreamError, OSError):
    """Binding a socket failed (address in use, no such interface, permission)."""


def is_loopback_host(host: str) -> bool:
    host = host.strip("[]")
    if host in _LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_endpoint(endpoint: str) -> str:
    """Check the syntax of a tcp/ipc/inproc endpoint; return it unchanged."""
    if not isinstance(endpoint, str) or "://" not in endpoint:
        raise EndpointError(
            f"expected an endpoint like tcp://127.0.0.1:5555 or ipc:///tmp/stream, got {endpoint!r}"
        )
    transport = endpoint.split("://", 1)[0]
    if transport in ("ipc", "inproc"):
        if endpoint == f"{transport}://":
            raise EndpointError(f"{endpoint!r} lacks a path")
        return endpoint
    if transport != "tcp":
        raise EndpointError(
            f"unsupported transport {transport!r} in {endpoint!r}: use tcp://, ipc:// or inproc://"
        )
    match = _TCP.match(endpoint)
    if match is None:
        raise EndpointError(
            f"expected tcp://HOST:PORT (e.g. tcp://127.0.0.1:5555), got {endpoint!r}"
        )
    port = match["port"]
    if port != "*" and not 1 <= int(port) <= 65535:
        raise EndpointError(f"port must be in 1..65535 (or * for any free port), got {port}")
    return endpoint


def check_bind_endpoint(endpoint: str, *, allow_remote: bool = False) -> str:
    """Like :func:`check_endpoint`, and refuse non-loopback tcp binds unless ``allow_remote``."""
    check_endpoint(endpoint)
    match = _TCP.match(endpoint)
    if match is not None and not allow_remote and not is_loopback_host(match["host"]):
        raise EndpointError(
            f"refusing to bind {endpoint}: it is reachable from other machines; bind "
            "tcp://127.0.0.1:PORT, or pass --allow-remote-bind (and consider --curve-keys)"
        )
    return endpoint


def bind(socket: zmq.Socket, endpoint: str, *, allow_remote: bool = False) -> str:
    """Bind ``socket`` after the checks; return the bound endpoint (real port for ``:*``)."""
    check_bind_endpoint(endpoint, allow_remote=allow_remote)
    try:
        socket.bind(endpoint)
    except zmq.ZMQError as err:
        raise BindError(f"cannot bind {endpoint}: {err.strerror}") from err
    return socket.getsockopt_string(zmq.LAST_ENDPOINT)
