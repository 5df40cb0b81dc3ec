"""Members of a zip or tar archive, listed from its headers and read one at a time in memory.

Nothing is ever extracted to disk (so member paths such as ``../../x`` cannot write anywhere),
and a member's declared size and compression ratio are checked against :class:`ArchiveLimits`
before a byte of it is decompressed, so a "zip bomb" (gigabytes of zeros in a few megabytes) is
refused at once in bounded memory. The archive kind is told from the content, not the suffix: a
``.tar`` whose last member is itself a zip file (every ``torch.save`` file is one) must not be
taken for a zip.
"""

from __future__ import annotations

import tarfile
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from adaattn_video.errors import ArchiveLimitError, CheckpointError
from adaattn_video.published.text import first_line

ArchiveKind = Literal["zip", "tar"]
ARCHIVE_SUFFIXES = (".zip", ".tar", ".tar.gz", ".tgz", ".tar.bz2", ".tar.xz")
_ZIP_MAGIC = (b"PK\x03\x04", b"PK\x05\x06")  # a local file header; an empty zip's end record


@dataclass(frozen=True)
class ArchiveLimits:
    """What a wanted member may declare before it is read.

    Attributes:
        max_member_bytes: largest uncompressed size.
        max_ratio: largest uncompressed / compressed size (zip members; tar headers carry no
            compressed size, and the size limit bounds them).
        ratio_from_bytes: the ratio is checked only for members at least this large.
    """

    max_member_bytes: int
    max_ratio: float
    ratio_from_bytes: int = 0

    def __post_init__(self) -> None:
        if self.max_member_bytes <= 0:
            raise ValueError(f"max_member_bytes must be > 0, got {self.max_member_bytes}")
        if self.max_ratio < 1:
            raise ValueError(f"max_ratio must be >= 1, got {self.max_ratio}")
        if self.ratio_from_bytes < 0:
            raise ValueError(f"ratio_from_bytes must be >= 0, got {self.ratio_from_bytes}")


@dataclass(frozen=True)
class ArchiveMember:
    """One regular file inside an archive, as its headers describe it.

    Attributes:
        archive: the archive's path.
        kind: ``"zip"`` or ``"tar"`` (told from the content).
        name: the member's path inside the archive (never used as a path on disk).
        size: declared uncompressed size in bytes.
        packed_size: compressed size in bytes (zip), or None (tar).
        limits: checked again when reading (the declared size bounds the read).
    """

    archive: Path
    kind: ArchiveKind
    name: str
    size: int
    packed_size: int | None
    limits: ArchiveLimits

    @property
    def location(self) -> str:
        """``archive:member``, as messages show it."""
        return f"{self.archive}:{self.name}"

    def read(self) -> bytes:
        """The member's bytes, never more than ``limits.max_member_bytes``.

        Raises:
            CheckpointError: the archive or member is corrupt (CRC mismatch, truncated).
            ArchiveLimitError: the member holds more bytes than its header declared.
        """
        cap = self.limits.max_member_bytes
        try:
            if self.kind == "zip":
                with zipfile.ZipFile(self.archive) as handle, handle.open(self.name) as member:
                    data = member.read(cap + 1)
            else:
                with tarfile.open(self.archive) as handle:
                    member = handle.extractfile(self.name)
                    if member is None:
                        raise CheckpointError(f"{self.location}: not a regular file")
                    data = member.read(cap + 1)
        except (zipfile.BadZipFile, tarfile.TarError, OSError, EOFError, KeyError) as err:
            raise CheckpointError(
                f"{self.location}: cannot be read from the {self.kind} archive "
                f"({first_line(err)}); download the package again"
            ) from err
        if len(data) > cap:
            raise ArchiveLimitError(
                f"{self.location}: holds more than {cap} bytes (its header said {self.size}); "
                "refused, download the package again"
            )
        return data


def is_archive_name(path: Path) -> bool:
    """Whether ``path``'s name ends like an archive (for scanning directories)."""
    return path.name.lower().endswith(ARCHIVE_SUFFIXES)


def archive_kind(path: Path) -> ArchiveKind | None:
    """``"zip"`` or ``"tar"`` from the file's content (any suffix), or None.

    A zip starts with a local file header; a tar is checked by its header checksum (also
    compressed: gzip, bzip2, xz). Only then is a zip with data before it (a self-extractor) looked
    for by its end record, because that record may also belong to a zip stored *inside* a tar.
    """
    try:
        with path.open("rb") as handle:
            head = handle.read(4)
        if head in _ZIP_MAGIC:
            return "zip"
        if tarfile.is_tarfile(path):
            return "tar"
        if zipfile.is_zipfile(path):
            return "zip"
    except OSError:
        return None
    return None


def _check_limits(member: ArchiveMember) -> None:
    limits = member.limits
    if member.size > limits.max_member_bytes:
        raise ArchiveLimitError(
            f"{member.location}: declares {member.size} bytes uncompressed, more than the "
            f"{limits.max_member_bytes}-byte limit; refused without reading it (not the file "
            "it is named after? download the package again)"
        )
    packed = member.packed_size
    if packed is not None and member.size >= limits.ratio_from_bytes:
        ratio = member.size / max(packed, 1)
        if ratio > limits.max_ratio:
            raise ArchiveLimitError(
                f"{member.location}: compressed {ratio:.0f}:1 ({packed} -> {member.size} bytes), "
                f"more than the {limits.max_ratio:.0f}:1 weights ever reach; refused without "
                "reading it (a zip bomb or a damaged package)"
            )


def archive_members(
    archive: Path, wanted: Callable[[str], bool], limits: ArchiveLimits
) -> list[ArchiveMember]:
    """The regular-file members of ``archive`` whose path ``wanted`` accepts, each checked
    against ``limits`` from the headers alone (nothing is decompressed here except, for a
    compressed tar, the stream up to the last header).

    Raises:
        CheckpointError: not a zip or tar archive, or an unreadable directory.
        ArchiveLimitError: a wanted member is larger, or compressed more, than ``limits`` allow.
    """
    kind = archive_kind(archive)
    members: list[ArchiveMember] = []
    try:
        if kind == "zip":
            with zipfile.ZipFile(archive) as handle:
                for info in handle.infolist():
                    if not info.is_dir() and wanted(info.filename):
                        size, packed = info.file_size, info.compress_size
                        members.append(
                            ArchiveMember(archive, kind, info.filename, size, packed, limits)
                        )
        elif kind == "tar":
            with tarfile.open(archive) as handle:
                for info in handle:  # lazily: a member's data is skipped, never held
                    if info.isfile() and wanted(info.name):
                        members.append(
                            ArchiveMember(archive, kind, info.name, info.size, None, limits)
                        )
                        _check_limits(members[-1])  # before scanning on past a huge member
        else:
            raise CheckpointError(
                f"{archive}: not a zip (or tar) archive; give the downloaded package as it is, "
                "or a directory holding the extracted .pth files"
            )
    except (zipfile.BadZipFile, tarfile.TarError, OSError, EOFError) as err:
        raise CheckpointError(
            f"{archive}: not a readable {kind} archive ({first_line(err)}); download it again"
        ) from err
    for member in members:
        _check_limits(member)
    return members
