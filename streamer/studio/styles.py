"""The studio's style gallery: the bundled paintings (or the ``--style`` images) plus pictures
uploaded from the page, each with a short id the page uses.

Uploads are untrusted: the file size is limited before anything is decoded; then the one image
reader (:func:`adaattn_video.image_io.read_image`) decodes it once completely, refusing a
picture whose header declares more than its pixel limit before any pixel is decoded (a small
file can claim a huge picture) and a file that is not a decodable picture, each with one line;
only then is it kept, under a generated name in the run's ``styles/`` folder.
"""

from __future__ import annotations

import io
import re
import threading
from dataclasses import dataclass
from pathlib import Path

from adaattn_video.errors import ImageReadError, ImageTooLargeError, StylestreamError
from adaattn_video.image_io import read_image

THUMBNAIL_SIDE = 240
_FORMATS = {"JPEG": ".jpg", "PNG": ".png", "WEBP": ".webp", "BMP": ".bmp", "GIF": ".gif"}


class StyleUploadError(StylestreamError, ValueError):
    """An uploaded style picture that is refused (too big, not a picture)."""


@dataclass(frozen=True)
class StyleEntry:
    id: str
    name: str
    path: Path
    kind: str  # "bundled" or "upload"

    def as_dict(self) -> dict[str, str]:
        return {"id": self.id, "name": self.name, "kind": self.kind}


def _slug(text: str, fallback: str = "style") -> str:
    slug = re.sub(r"[^A-Za-z0-9_-]+", "-", text).strip("-_")[:40]
    return slug or fallback


class StyleLibrary:
    """Thread-safe list of styles; uploads go to ``upload_dir`` (created on the first one)."""

    def __init__(
        self,
        styles: list[Path],
        upload_dir: Path,
        *,
        max_bytes: int,
    ) -> None:
        self.upload_dir = upload_dir
        self.max_bytes = max_bytes
        self._lock = threading.Lock()
        self._entries: dict[str, StyleEntry] = {}
        self._thumbnails: dict[str, bytes] = {}
        for path in styles:
            base = _slug(path.stem)
            style_id = base
            n = 2
            while style_id in self._entries:
                style_id, n = f"{base}-{n}", n + 1
            self._entries[style_id] = StyleEntry(style_id, path.stem, path, "bundled")
        self._uploads = 0

    def entries(self) -> list[StyleEntry]:
        with self._lock:
            return list(self._entries.values())

    @property
    def default(self) -> StyleEntry:
        return self.entries()[0]

    def get(self, style_id: object) -> StyleEntry:
        with self._lock:
            entry = self._entries.get(style_id) if isinstance(style_id, str) else None
            if entry is None:
                raise StyleUploadError(f"no style {style_id!r}; styles: {', '.join(self._entries)}")
            return entry

    def by_path(self, path: str | Path) -> StyleEntry | None:
        resolved = Path(path)
        for entry in self.entries():
            if entry.path == resolved:
                return entry
        return None

    def thumbnail(self, style_id: str) -> bytes:
        """A JPEG at most 240 px on its longer side (made once, kept in memory)."""
        entry = self.get(style_id)
        with self._lock:
            cached = self._thumbnails.get(style_id)
        if cached is not None:
            return cached
        from PIL import Image

        pixels = read_image(entry.path, max_side=THUMBNAIL_SIDE)  # (3, H, W) uint8
        picture = Image.fromarray(pixels.permute(1, 2, 0).numpy())
        picture.thumbnail((THUMBNAIL_SIDE, THUMBNAIL_SIDE))
        buffer = io.BytesIO()
        picture.save(buffer, format="JPEG", quality=85)
        data = buffer.getvalue()
        with self._lock:
            self._thumbnails[style_id] = data
        return data

    def add_upload(self, data: bytes, filename: str) -> StyleEntry:
        """Check, store and list an uploaded picture; raises :class:`StyleUploadError`."""
        from PIL import Image

        if len(data) > self.max_bytes:
            raise StyleUploadError(
                f"the picture is {len(data) / 1e6:.1f} MB; the limit is "
                f"{self.max_bytes / 1e6:.1f} MB (--upload-mb)"
            )
        if not data:
            raise StyleUploadError("the upload is empty: choose a JPEG or PNG picture")
        with self._lock:
            self._uploads += 1
            style_id = f"upload{self._uploads}-{_slug(Path(filename).stem)}"
        self.upload_dir.mkdir(parents=True, exist_ok=True)
        part = self.upload_dir / f".{style_id}.part"
        part.write_bytes(data)
        try:
            try:  # the pixel limit (from the header), then every pixel decoded once
                read_image(part)
            except ImageTooLargeError as err:
                raise StyleUploadError(
                    f"{filename!r} is too large: {_without_path(err, part)}"
                ) from err
            except ImageReadError as err:
                raise StyleUploadError(
                    f"{filename!r} is not a picture that can be decoded "
                    f"({_without_path(err.__cause__ or err, part)}); upload a JPEG, PNG, WebP "
                    "or BMP"
                ) from err
            with Image.open(part) as image:  # decoded above: only its format names the file
                kind = image.format
            if kind not in _FORMATS:
                raise StyleUploadError(f"{filename!r} is {kind}; upload a JPEG, PNG, WebP or BMP")
            path = self.upload_dir / f"{style_id}{_FORMATS[kind]}"
            part.replace(path)
        finally:
            part.unlink(missing_ok=True)
        entry = StyleEntry(style_id, Path(filename).stem[:60] or style_id, path, "upload")
        with self._lock:
            self._entries[style_id] = entry
        return entry


def _without_path(err: Exception, path: Path) -> str:
    """The reader's message about the temporary file, without its name."""
    text = str(err).replace(f"image {path} ", "the picture ")
    return text.replace(f"'{path}'", "the upload").replace(str(path), "the upload")
