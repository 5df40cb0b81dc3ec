"""The studio's web application (aiohttp): the page, its JSON API, the WebRTC signalling and
the access checks every request passes; :mod:`streamer.studio.server` runs it.

Routes (every ``/api`` route needs the access token when one is set: header ``X-Studio-Token``
or query ``token``)::

    GET  /                                 the page (streamer/web/studio.html)
    GET  /static/{file}                    studio.js, studio.css
    GET  /api/config                       size, alpha, styles, limits
    GET  /api/styles                       the gallery
    GET  /api/styles/{id}/thumb.jpg        a thumbnail
    POST /api/styles                       upload a picture (multipart field "file")
    POST /api/offer                        {sdp, type, style, alpha} -> {sdp, type, id}
    GET  /api/connections/{id}             the connection's numbers (style id, fps, drops)
    POST /api/connections/{id}/style       {styles: [id, ...], weights: [...] | null}
    POST /api/connections/{id}/alpha       {alpha}
    POST /api/connections/{id}/record      {on: true|false}
    POST /api/connections/{id}/close       (the page's beacon when it is closed)
    GET  /api/recordings/{file}            a finished recording
    GET  /api/status                       the engine's status and every connection's
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
import secrets
from collections.abc import Callable
from pathlib import Path
from typing import Any

from adaattn_video.assets import style_images
from adaattn_video.errors import StylestreamError
from adaattn_video.settings import check_alpha
from streamer.studio.config import StudioConfig, ice_servers

log = logging.getLogger(__name__)

WEB_DIR = Path(__file__).resolve().parent.parent / "web"
STATIC_FILES = {"studio.js": "text/javascript", "studio.css": "text/css"}


class Studio:
    """The engine, the style library and the connections; the aiohttp handlers."""

    def __init__(self, config: StudioConfig, engine: Any, token: str | None) -> None:
        from streamer.studio.styles import StyleLibrary

        self.config = config
        self.engine = engine
        self.token = token
        self.run_dir = config.resolved_run_dir()
        styles = [Path(s).resolve() for s in config.stylizer.styles] or style_images()
        self.styles = StyleLibrary(styles, self.run_dir / "styles", max_bytes=config.upload_bytes)
        self.connections: dict[str, Any] = {}
        self.closed_connections = 0
        self._tasks: set[asyncio.Future[None]] = set()

    # -- helpers ----------------------------------------------------------------------------
    def app(self) -> Any:
        from aiohttp import web

        app = web.Application(
            middlewares=[self._guard], client_max_size=self.config.upload_bytes + 65536
        )
        r = app.router
        r.add_get("/", self.page)
        r.add_get("/static/{name}", self.static)
        r.add_get("/api/config", self.get_config)
        r.add_get("/api/styles", self.list_styles)
        r.add_get("/api/styles/{id}/thumb.jpg", self.thumbnail)
        r.add_post("/api/styles", self.upload)
        r.add_post("/api/offer", self.offer)
        r.add_get("/api/connections/{id}", self.connection_status)
        r.add_post("/api/connections/{id}/style", self.set_style)
        r.add_post("/api/connections/{id}/alpha", self.set_alpha)
        r.add_post("/api/connections/{id}/record", self.record)
        r.add_post("/api/connections/{id}/close", self.close_connection)
        r.add_get("/api/recordings/{name}", self.recording)
        r.add_get("/api/status", self.status)
        return app

    async def _guard_impl(self, request: Any, handler: Callable[[Any], Any]) -> Any:
        """Host/Origin and token checks, then user errors -> 400 with one JSON line."""
        from aiohttp import web

        refused = self._refuse_foreign(request)
        if refused is not None:
            return web.json_response({"error": refused}, status=403)

        if self.token is not None and not request.path.startswith("/static/"):
            given = request.headers.get("X-Studio-Token") or request.query.get("token") or ""
            # a header is decoded with surrogateescape: any bytes compare (and differ)
            given_bytes = given.encode("utf-8", "surrogateescape")
            if not secrets.compare_digest(given_bytes, self.token.encode()):
                if request.path == "/":
                    return web.Response(
                        status=403,
                        text="stylestream studio: open the URL with its ?token=... "
                        "(printed when the studio started)",
                    )
                return web.json_response({"error": "missing or wrong access token"}, status=403)
        try:
            return await handler(request)
        except web.HTTPException:
            raise
        except (StylestreamError, ValueError, KeyError, AssertionError) as err:
            message = str(err.args[0]) if isinstance(err, KeyError) and err.args else str(err)
            return web.json_response({"error": self._public(message)}, status=400)
        except OSError as err:  # e.g. the run folder cannot be written: short, no traceback
            log.error("%s %s: %s", request.method, request.path, err)
            reason = f"the server cannot do that: {err.strerror or type(err).__name__}"
            return web.json_response({"error": reason}, status=500)

    def _public(self, message: str) -> str:
        """A reply never shows where the server keeps its files."""
        return message.replace(str(self.run_dir), "<run dir>")

    @property
    def _guard(self) -> Any:
        from aiohttp import web

        @web.middleware
        async def guard(request: Any, handler: Callable[[Any], Any]) -> Any:
            return await self._guard_impl(request, handler)

        return guard

    def _refuse_foreign(self, request: Any) -> str | None:
        """Why a request from elsewhere is refused, or None.

        On loopback, only ``Host: localhost / 127.0.0.1 / [::1]`` is answered: a web page
        whose name is re-pointed at 127.0.0.1 (DNS rebinding) cannot use the studio. Anywhere,
        a state-changing request must come from the studio's own page (``Origin``): another
        site open in the same browser cannot upload, record or restyle."""
        host = request.host or ""
        name = host.rsplit(":", 1)[0] if not host.endswith("]") else host
        if not self.config.remote and name not in ("localhost", "127.0.0.1", "[::1]"):
            return f"this studio answers only to localhost, not {host!r}"
        origin = request.headers.get("Origin")
        own = f"{request.scheme}://{host}"
        if request.method not in ("GET", "HEAD") and origin is not None and origin != own:
            return f"requests from {origin} are refused; use the studio's own page"
        return None

    def _connection(self, request: Any) -> Any:
        connection = self.connections.get(request.match_info["id"])
        if connection is None:
            raise ValueError(f"no connection {request.match_info['id']!r} (closed?)")
        return connection

    @staticmethod
    async def _json(request: Any) -> dict[str, Any]:
        try:
            data = await request.json()
        except (json.JSONDecodeError, UnicodeDecodeError) as err:
            raise ValueError(f"expected a JSON object: {err}") from err
        if not isinstance(data, dict):
            raise ValueError(f"expected a JSON object, got {type(data).__name__}")
        return data

    # -- page -------------------------------------------------------------------------------
    async def page(self, request: Any) -> Any:
        from aiohttp import web

        return web.Response(
            text=(WEB_DIR / "studio.html").read_text(),
            content_type="text/html",
            headers={"Cache-Control": "no-store"},
        )

    async def static(self, request: Any) -> Any:
        from aiohttp import web

        name = request.match_info["name"]
        if name not in STATIC_FILES:
            raise web.HTTPNotFound()
        return web.Response(
            text=(WEB_DIR / name).read_text(),
            content_type=STATIC_FILES[name],
            headers={"Cache-Control": "no-store"},
        )

    async def get_config(self, request: Any) -> Any:
        from aiohttp import web

        height, width = self.config.size
        return web.json_response(
            {
                "width": width,
                "height": height,
                "alpha": self.config.stylizer.alpha,
                "default_style": self.styles.default.id,
                "styles": [e.as_dict() for e in self.styles.entries()],
                "untrained": self.config.stylizer.untrained,
                "upload_mb": round(self.config.upload_bytes / 1e6, 1),
                "stamp_markers": self.config.stamp_markers,
            }
        )

    async def list_styles(self, request: Any) -> Any:
        from aiohttp import web

        return web.json_response({"styles": [e.as_dict() for e in self.styles.entries()]})

    async def thumbnail(self, request: Any) -> Any:
        from aiohttp import web

        loop = asyncio.get_running_loop()
        data = await loop.run_in_executor(None, self.styles.thumbnail, request.match_info["id"])
        return web.Response(body=data, content_type="image/jpeg")

    async def upload(self, request: Any) -> Any:
        from aiohttp import web

        if not request.content_type.startswith("multipart/"):
            raise ValueError("expected a multipart/form-data upload with a 'file' field")
        try:
            filename, data = await self._read_upload(request)
        except (AssertionError, ValueError, KeyError, LookupError) as err:
            raise ValueError(f"malformed multipart upload ({type(err).__name__})") from err
        loop = asyncio.get_running_loop()
        entry = await loop.run_in_executor(None, self.styles.add_upload, bytes(data), filename)
        return web.json_response(entry.as_dict())

    async def _read_upload(self, request: Any) -> tuple[str, bytearray]:
        """The 'file' field's name and bytes (at most the upload limit)."""
        reader = await request.multipart()
        part = await reader.next()
        while part is not None and part.name != "file":
            part = await reader.next()
        if part is None:
            raise StylestreamError("expected a multipart upload with a 'file' field")
        data = bytearray()
        while chunk := await part.read_chunk(65536):
            data.extend(chunk)
            if len(data) > self.config.upload_bytes:
                raise StylestreamError(
                    f"the picture is larger than the limit of "
                    f"{self.config.upload_bytes / 1e6:.1f} MB"
                )
        return part.filename or "upload", data

    # -- connections ------------------------------------------------------------------------
    async def offer(self, request: Any) -> Any:
        from aiohttp import web

        from streamer.studio.connection import Connection

        data = await self._json(request)
        if len(self.connections) >= self.config.max_connections:
            return web.json_response(
                {"error": f"the studio is full ({self.config.max_connections} connections)"},
                status=503,
            )
        style = self.styles.get(data.get("style") or self.styles.default.id)
        alpha = check_alpha(data.get("alpha", self.config.stylizer.alpha))
        if not isinstance(data.get("sdp"), str) or data.get("type") != "offer":
            raise ValueError("expected {sdp: ..., type: 'offer'}")
        connection_id = f"c{secrets.token_hex(4)}"
        connection = Connection(
            connection_id,
            self.engine,
            style_path=style.path,
            alpha=alpha,
            size=self.config.size,
            recordings_dir=self.run_dir / "recordings",
            stamp_markers=self.config.stamp_markers,
            ice_servers=ice_servers(self.config),
            motion=self.config.motion,
        )
        self.connections[connection_id] = connection
        try:
            answer = await connection.answer(data["sdp"], data["type"])
        except BaseException:
            self.connections.pop(connection_id, None)
            await connection.close()
            raise

        async def forget() -> None:
            await connection.closed.wait()
            if self.connections.pop(connection_id, None) is not None:
                self.closed_connections += 1

        async def expire() -> None:  # an offer that never connects must not hold a slot
            await asyncio.sleep(self.config.connect_timeout_s)
            if connection.pc.connectionState in ("new", "connecting"):
                log.info("connection %s: not connected after %.0f s, closed", connection_id,
                         self.config.connect_timeout_s)  # fmt: skip
                await connection.close()

        for job in (forget(), expire()):
            self._tasks.add(task := asyncio.ensure_future(job))
            task.add_done_callback(self._tasks.discard)
        log.info("connection %s opened (style %s)", connection_id, style.id)
        return web.json_response({**answer, "id": connection_id})

    async def connection_status(self, request: Any) -> Any:
        from aiohttp import web

        return web.json_response(self._connection(request).status())

    async def set_style(self, request: Any) -> Any:
        from aiohttp import web

        connection = self._connection(request)
        data = await self._json(request)
        ids = data.get("styles")
        if isinstance(ids, str):
            ids = [ids]
        if not isinstance(ids, list) or not 1 <= len(ids) <= 4:
            raise ValueError(f"expected 'styles': a list of 1-4 style ids, got {ids!r}")
        paths = [str(self.styles.get(i).path) for i in ids]
        request_body = {
            "command": "set-style",
            "stream": connection.id,
            "styles": paths,
            "weights": data.get("weights"),
        }
        loop = asyncio.get_running_loop()
        reply = await loop.run_in_executor(None, self.engine.handle, request_body)
        return web.json_response(reply)

    async def set_alpha(self, request: Any) -> Any:
        from aiohttp import web

        connection = self._connection(request)
        data = await self._json(request)
        reply = self.engine.handle(
            {"command": "set-alpha", "stream": connection.id, "alpha": data.get("alpha")}
        )
        return web.json_response(reply)

    async def record(self, request: Any) -> Any:
        from aiohttp import web

        connection = self._connection(request)
        data = await self._json(request)
        loop = asyncio.get_running_loop()
        if data.get("on"):
            path = await loop.run_in_executor(None, connection.start_recording)
            return web.json_response({"recording": path.name})
        done = await loop.run_in_executor(None, connection.stop_recording)
        if done is None:
            return web.json_response({"recording": None})
        name = Path(done["path"]).name
        return web.json_response(
            {
                "recording": None,
                "saved": name if done["saved"] else None,
                "frames": done["frames"],
                "path": done["path"],
            }
        )

    async def close_connection(self, request: Any) -> Any:
        from aiohttp import web

        connection = self.connections.get(request.match_info["id"])
        if connection is not None:
            await connection.close()
        return web.json_response({"closed": request.match_info["id"]})

    async def recording(self, request: Any) -> Any:
        from aiohttp import web

        name = request.match_info["name"]
        path = self.run_dir / "recordings" / name
        if not re.fullmatch(r"c[0-9a-f]{8}-[0-9-]+\.mp4", name) or not path.is_file():
            raise web.HTTPNotFound()
        return web.FileResponse(path, headers={"Content-Type": "video/mp4"})

    async def status(self, request: Any) -> Any:
        from aiohttp import web

        loop = asyncio.get_running_loop()
        engine = await loop.run_in_executor(None, self.engine.status)
        return web.json_response(
            {
                "engine": engine,
                "connections": [c.status() for c in self.connections.values()],
                "closed_connections": self.closed_connections,
            }
        )

    async def close(self) -> None:
        for connection in list(self.connections.values()):
            with contextlib.suppress(Exception):
                await connection.close()
