"""Web pages for the outputs: the OBS browser source and the HLS player.

The viewer's HTTP server (``stylestream view``, also the grid of a ``serve``) mounts them through
:func:`output_route` without knowing the pages:

- :func:`browser_source_page` (``GET /source/NAME``): the stylized video alone, filling the
  window, no controls, transparent margins (OBS "Browser Source").
- :func:`hls_player_page` (``GET /hls/NAME/``): a player for an HLS output's playlist.
- :func:`vendor_asset` (``GET /vendor/hls.min.js``): hls.js shipped with the package (no CDN).
- :func:`hls_file` (``GET /hls/NAME/FILE``): the playlist and segments of an HLS output folder.

Each returns ``(body, content_type)``; a name that is not there raises :class:`FileNotFoundError`
(the server answers 404). Page sources (``src``) are HTML-escaped into a data attribute.
"""

from __future__ import annotations

import html
import re
from collections.abc import Iterable, Mapping
from pathlib import Path

from streamer.outputs.spec import OutputUrlError, parse_output

WEB = Path(__file__).resolve().parent.parent / "web"
VENDOR = WEB / "vendor"
HLS_JS_ROUTE = "/vendor/hls.min.js"
_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")  # a stream / HLS name in a URL path
_TYPES = {
    ".js": "text/javascript; charset=utf-8",
    ".m3u8": "application/vnd.apple.mpegurl",
    ".ts": "video/mp2t",
    ".html": "text/html; charset=utf-8",
}


def _render(template: str, src: str, hls_js: str) -> tuple[bytes, str]:
    text = (WEB / template).read_text(encoding="utf-8")
    text = text.replace("{{SRC}}", html.escape(src, quote=True))
    text = text.replace("{{HLS_JS}}", html.escape(hls_js, quote=True))
    return text.encode("utf-8"), _TYPES[".html"]


def browser_source_page(src: str, *, hls_js: str = HLS_JS_ROUTE) -> tuple[bytes, str]:
    """The bare page showing ``src`` (an ``.m3u8`` playlist via hls.js, else MJPEG/JPEG)."""
    return _render("browser_source.html", src, hls_js)


def hls_player_page(playlist: str, *, hls_js: str = HLS_JS_ROUTE) -> tuple[bytes, str]:
    """A player page for the HLS playlist at URL ``playlist``."""
    return _render("hls_player.html", playlist, hls_js)


def _safe_file(folder: Path, name: str, suffixes: tuple[str, ...]) -> Path:
    if "/" in name or "\\" in name or name.startswith(".") or not name.endswith(suffixes):
        raise FileNotFoundError(name)
    path = folder / name
    if not path.is_file():
        raise FileNotFoundError(name)
    return path


def vendor_asset(name: str) -> tuple[bytes, str]:
    """A file of ``streamer/web/vendor`` (``hls.min.js``)."""
    path = _safe_file(VENDOR, name, (".js",))
    return path.read_bytes(), _TYPES[".js"]


def hls_file(folder: str | Path, name: str) -> tuple[bytes, str]:
    """A playlist (``.m3u8``) or segment (``.ts``) of an HLS output folder (no other files, no
    paths: a request cannot leave the folder). Complete files only: the output renames them
    into place."""
    path = _safe_file(Path(folder), name, (".m3u8", ".ts"))
    return path.read_bytes(), _TYPES[path.suffix]


def hls_folders(entries: Iterable[str]) -> dict[str, Path]:
    """``NAME=DIR`` / ``DIR`` entries (``view --hls``) -> name -> playlist path (``DIR`` alone:
    NAME is the folder's name; ``DIR`` may end in ``NAME.m3u8`` as ``hls:`` outputs do).

    Raises:
        OutputUrlError: a bad folder, or a name twice.
    """
    found: dict[str, Path] = {}
    for entry in entries:
        name, sep, folder = str(entry).rpartition("=")
        playlist = Path(parse_output(f"hls:{folder}").path)
        name = name if sep else playlist.parent.name
        if not _NAME.match(name) or name in found:
            raise OutputUrlError(f"--hls {entry!r}: give each folder a unique NAME=DIR")
        found[name] = playlist
    return found


def output_route(
    path: str, hls: Mapping[str, Path], *, named_streams: bool = True
) -> tuple[bytes, str] | None:
    """The answer to an HTTP GET of ``path`` if it is one of the outputs' routes, else None:

    ``/source``: the bare page of the (single) MJPEG stream; ``/source/NAME``: of HLS output
    NAME when there is one, else of stream NAME of a serve (``named_streams``);
    ``/hls/NAME/``: the player; ``/hls/NAME/FILE``: its playlist and segments;
    ``/vendor/FILE``: hls.js. Raises FileNotFoundError (404) for a name that is not there.
    """
    if path == "/source":
        return browser_source_page("/stream.mjpg")
    head, _, rest = path.lstrip("/").partition("/")
    if head == "vendor":
        return vendor_asset(rest)
    if head == "source":
        if rest in hls:
            return browser_source_page(f"/hls/{rest}/{hls[rest].name}")
        if named_streams and _NAME.match(rest):
            return browser_source_page(f"/stream/{rest}.mjpg")
        raise FileNotFoundError(rest)
    if head != "hls":
        return None
    name, _, file = rest.partition("/")
    if name not in hls:
        raise FileNotFoundError(name)
    if not file:
        return hls_player_page(f"/hls/{name}/{hls[name].name}")
    return hls_file(hls[name].parent, file)


__all__ = [
    "browser_source_page",
    "hls_file",
    "hls_folders",
    "hls_player_page",
    "output_route",
    "vendor_asset",
]
