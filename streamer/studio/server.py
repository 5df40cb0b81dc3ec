"""Running the studio: the stream engine, listening (HTTP, or HTTPS with a given or
self-signed certificate), the URL with its token, SIGINT/SIGTERM and the run loop around the
:class:`~streamer.studio.app.Studio` application."""

from __future__ import annotations

import asyncio
import signal
import socket
import ssl
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from adaattn_video.errors import StylestreamError
from streamer.studio.app import Studio
from streamer.studio.config import StudioConfig, engine_config, require_studio_packages


@dataclass(frozen=True)
class StudioInfo:
    url: str  # what to open (with the token)
    port: int
    tls: bool
    token: str | None
    run_dir: Path
    cert: Path | None
    zmq: str | None = None  # the bound PUB endpoint (topic = connection id), or None


def run_studio(
    config: StudioConfig,
    *,
    model: Any = None,
    on_ready: Callable[[StudioInfo], None] | None = None,
    stop_event: threading.Event | None = None,
    handle_signals: bool = False,
) -> dict[str, Any]:
    """Serve the studio until ``config.seconds`` pass, ``stop_event`` is set or SIGINT/SIGTERM
    (``handle_signals``, main thread); returns the last status."""
    require_studio_packages()
    from streamer.serve.server import StreamServer

    if config.cert is not None and config.key is not None:  # before the model loads
        check_tls_files(Path(config.cert), Path(config.key))
    stop = stop_event or threading.Event()
    engine = StreamServer(engine_config(config), model=model)
    try:
        engine.scheduler.start()
        return asyncio.run(_serve(config, engine, stop, on_ready, handle_signals))
    finally:
        engine.close()


def _tls_files(config: StudioConfig, run_dir: Path) -> tuple[Path, Path] | None:
    """The certificate and key to serve HTTPS with (the user's, or a generated self-signed
    pair in the run folder), or None for plain HTTP."""
    from streamer.studio.tls import generate_self_signed

    if not config.tls:
        return None
    if config.cert is not None and config.key is not None:
        return Path(config.cert), Path(config.key)
    return generate_self_signed(run_dir / "tls", config.host)


def _studio_url(config: StudioConfig, port: int, https: bool, token: str | None) -> str:
    """The address a browser opens: this machine's name when serving every interface."""
    host = config.host
    if host in ("127.0.0.1", "localhost"):
        host = "localhost"
    elif host in ("0.0.0.0", "::", ""):  # every interface: name this machine
        host = socket.gethostname()
    elif ":" in host:
        host = f"[{host}]"
    url = f"{'https' if https else 'http'}://{host}:{port}/"
    return url + (f"?token={token}" if token else "")


async def _serve(
    config: StudioConfig,
    engine: Any,
    stop: threading.Event,
    on_ready: Callable[[StudioInfo], None] | None,
    handle_signals: bool,
) -> dict[str, Any]:
    from aiohttp import web

    from streamer.studio.tls import new_token, server_context

    token = config.token or (new_token() if config.remote else None)
    studio = Studio(config, engine, token)
    tls = _tls_files(config, studio.run_dir)
    cert_path = None if tls is None else tls[0]
    ssl_context = None if tls is None else server_context(*tls)
    runner = web.AppRunner(studio.app(), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, config.host, config.port, ssl_context=ssl_context)
    try:
        await site.start()
    except OSError as err:
        await runner.cleanup()
        raise StudioServeError(
            f"cannot serve on {config.host}:{config.port}: {err.strerror or err} "
            "(another program uses the port? try --port 0 for a free one)"
        ) from err
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    url = _studio_url(config, port, ssl_context is not None, token)
    publisher = engine.publisher
    info = StudioInfo(
        url,
        port,
        ssl_context is not None,
        token,
        studio.run_dir,
        cert_path,
        None if publisher is None else publisher.endpoint,
    )
    interrupted: list[int] = []

    def _on_signal(signum: int) -> None:
        interrupted.append(signum)
        stop.set()

    loop = asyncio.get_running_loop()
    if handle_signals and threading.current_thread() is threading.main_thread():
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, _on_signal, signum)
    if on_ready is not None:
        on_ready(info)
    started = time.monotonic()
    try:
        while not stop.is_set():
            if config.seconds is not None and time.monotonic() - started >= config.seconds:
                break
            engine.observe()  # the streams' rates are over their last few seconds
            await asyncio.sleep(0.1)
        status = {
            "engine": await loop.run_in_executor(None, engine.status),
            "connections_closed": studio.closed_connections,
            "interrupted_by": interrupted[0] if interrupted else None,
        }
    finally:
        await studio.close()
        await runner.cleanup()
    return status


class StudioServeError(StylestreamError, OSError):
    """The studio cannot listen where it was asked to."""


class StudioTlsError(StylestreamError, ValueError):
    """--cert / --key are not a PEM certificate and its private key."""


def check_tls_files(cert: Path, key: Path) -> None:
    """Load the pair once, before anything starts: one line when they are not PEM or do not
    belong together."""
    from streamer.studio.tls import server_context

    try:
        server_context(cert, key)
    except (ssl.SSLError, OSError, ValueError) as err:
        reason = getattr(err, "reason", None) or getattr(err, "strerror", None) or err
        raise StudioTlsError(
            f"--cert {cert} / --key {key}: not a PEM certificate and its private key ({reason})"
        ) from err
