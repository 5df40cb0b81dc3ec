"""Finding the published files by name: in directories (recursively), loose, or inside archives.

The packages' archive layout could not be checked from here, so files are found by their base
name wherever they sit; the two packages (which share names) are told apart later by their keys.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path, PurePosixPath

from adaattn_video.errors import CheckpointError, MissingWeightsError
from adaattn_video.published.archives import (
    ArchiveLimits,
    archive_kind,
    archive_members,
    is_archive_name,
)
from adaattn_video.published.catalog import (
    ADAATTN_3_FILE,
    DECODER_FILE,
    MAX_COMPRESSION_RATIO,
    MAX_MEMBER_BYTES,
    PUBLISHED_FILES,
    RATIO_CHECK_FROM_BYTES,
    TRANSFORMER_FILE,
    VGG_FILE,
)

PUBLISHED_LIMITS = ArchiveLimits(MAX_MEMBER_BYTES, MAX_COMPRESSION_RATIO, RATIO_CHECK_FROM_BYTES)


@dataclass(frozen=True)
class FoundFile:
    """A published file found on disk or inside an archive.

    Attributes:
        name: its base name (``latest_net_decoder.pth``).
        location: what messages show (``/x/a.zip:attn_adain_video/latest_net_decoder.pth``).
        folder: the directory it sits in, an archive counting as a directory (used to group the
            files of one model and to find the VGG file nearest to them).
        source: returns the file's bytes (archive member) or its path (a loose file, loaded
            without a copy).
    """

    name: str
    location: str
    folder: tuple[str, ...]
    source: Callable[[], bytes | Path] = field(repr=False, compare=False)

    @property
    def folder_text(self) -> str:
        return "/".join(self.folder).replace("//", "/") or "."


def _is_published(member: str) -> bool:
    return PurePosixPath(member).name in PUBLISHED_FILES


def _archive_files(archive: Path) -> list[FoundFile]:
    """The published files inside a zip or tar archive (read lazily, never extracted)."""
    base = archive.resolve().parts
    return [
        FoundFile(
            PurePosixPath(member.name).name,
            member.location,
            (*base, *PurePosixPath(member.name).parent.parts),
            member.read,
        )
        for member in archive_members(archive, _is_published, PUBLISHED_LIMITS)
    ]


def _loose_file(path: Path) -> FoundFile:
    return FoundFile(path.name, str(path), path.resolve().parent.parts, partial(Path, path))


def find_published_files(sources: Iterable[str | Path]) -> list[FoundFile]:
    """Every published file under ``sources`` (directories searched recursively, archives read
    in place, loose ``.pth`` files taken by name).

    Raises:
        MissingWeightsError: a source does not exist.
        CheckpointError: a source is neither a directory, an archive nor a published file; an
            archive is unreadable or holds an oversized published-file member.
    """
    found: list[FoundFile] = []
    for source in sources:
        path = Path(source).expanduser()
        if not path.exists():
            raise MissingWeightsError(
                f"{path} does not exist; give the directory or the .zip holding the published files"
            )
        if path.is_dir():
            for file in sorted(path.rglob("*")):
                if not file.is_file():
                    continue
                if file.name in PUBLISHED_FILES:
                    found.append(_loose_file(file))
                elif is_archive_name(file):
                    found += _archive_files(file)
        elif path.name in PUBLISHED_FILES:
            found.append(_loose_file(path))
        elif is_archive_name(path) or archive_kind(path) is not None:
            found += _archive_files(path)  # the kind is told from the content, not the name
        else:
            raise CheckpointError(
                f"{path}: expected a directory, a .zip/.tar package or one of {list(PUBLISHED_FILES)}"
            )
    return found


def searched_text(sources: Sequence[Path], variant: str | None) -> str:
    """``searched X, Y recursively ... for NAMES``, for missing-file messages."""
    names = [VGG_FILE, TRANSFORMER_FILE, DECODER_FILE]
    if variant != "video":
        names.append(ADAATTN_3_FILE + (" (image model)" if variant is None else ""))
    where = ", ".join(str(s) for s in sources)
    return f"searched {where} recursively (directories, .zip and .tar files) for {', '.join(names)}"
