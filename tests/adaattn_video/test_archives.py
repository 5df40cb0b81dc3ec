"""Archives given to ``weights import``: zip bombs refused from the headers, tar read as tar
(by content, not suffix), members never extracted to disk."""

from __future__ import annotations

import hashlib
import resource
import subprocess
import sys
import tarfile
import time
import zipfile
from pathlib import Path

import pytest
from helpers.cli import main_error
from helpers.published import save_files, save_zip, video_package

from adaattn_video.errors import ArchiveLimitError
from adaattn_video.weights import (
    MAX_COMPRESSION_RATIO,
    MAX_MEMBER_BYTES,
    ArchiveLimits,
    archive_members,
    import_published,
)

TRANSFORMER = "latest_net_transformer.pth"
MiB = 2**20


@pytest.fixture(scope="module")
def video_files() -> dict:
    return video_package(seed=0, vgg_last_index=25)


def _zeros_zip(path: Path, member: str, size: int) -> Path:
    """A real deflated zip holding ``size`` bytes of zeros (written in chunks, ~1/1000 on disk)."""
    chunk = bytes(16 * MiB)
    with (
        zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as archive,
        archive.open(member, "w", force_zip64=True) as handle,
    ):
        for _ in range(size // len(chunk)):
            handle.write(chunk)
    return path


@pytest.fixture(scope="module")
def bomb(tmp_path_factory) -> Path:
    """Past the member limit: 640 MiB of zeros named like a published file, ~3 MB on disk."""
    size = MAX_MEMBER_BYTES + 128 * MiB
    path = _zeros_zip(tmp_path_factory.mktemp("bomb") / "bomb.zip", f"pkg/{TRANSFORMER}", size)
    assert path.stat().st_size < size // 100
    return path


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_zip_bomb_is_refused_from_its_headers_at_once(bomb) -> None:
    before = _sha(bomb)
    peak_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    start = time.perf_counter()
    with pytest.raises(ArchiveLimitError) as err:
        import_published(bomb)
    elapsed = time.perf_counter() - start
    grown_mib = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - peak_before) / 1024
    message = str(err.value)
    assert "\n" not in message
    assert message.startswith(f"{bomb}:pkg/{TRANSFORMER}: declares")
    assert "refused without reading it" in message
    assert elapsed < 2.0, f"took {elapsed:.1f} s"
    assert grown_mib < 100, f"peak memory grew by {grown_mib:.0f} MiB"
    assert _sha(bomb) == before


def test_highly_compressed_member_under_the_size_limit_is_refused(tmp_path) -> None:
    """64 MiB of zeros is within the size limit but compresses ~1000:1: no weights do that."""
    package = _zeros_zip(tmp_path / "p.zip", f"v/{TRANSFORMER}", 64 * MiB)
    with pytest.raises(ArchiveLimitError, match=r"compressed \d+:1") as err:
        import_published(package)
    assert f"more than the {MAX_COMPRESSION_RATIO:.0f}:1" in str(err.value)


def test_cli_refuses_the_bomb_in_one_line_in_bounded_memory(bomb) -> None:
    """A real process: exit 2, one ``stylestream: error:`` line, its own peak RSS < 2 GB
    (Linux: read from /proc)."""
    code = (
        "import sys\n"
        "from streamer.cli import main\n"
        "rc = main(['weights', 'import', sys.argv[1], '-o', sys.argv[2]])\n"
        # VmHWM: this process image's own peak (ru_maxrss would include the forking parent's)
        "peak = [l for l in open('/proc/self/status') if l.startswith('VmHWM')][0].split()[1]\n"
        "print('PEAK_KIB', peak, file=sys.stderr)\n"
        "sys.exit(rc)\n"
    )
    out = bomb.parent / "never.safetensors"
    start = time.perf_counter()
    result = subprocess.run(
        [sys.executable, "-c", code, str(bomb), str(out)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    elapsed = time.perf_counter() - start
    assert result.returncode == 2, result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("stylestream: error:")]
    assert len(errors) == 1 and "Traceback" not in result.stderr, result.stderr
    assert "refused without reading it" in errors[0]
    peak_kib = int(result.stderr.split("PEAK_KIB")[1].split()[0])
    assert peak_kib < 2 * 1024 * 1024, f"peak RSS {peak_kib / 1024:.0f} MiB"
    assert elapsed < 60, f"took {elapsed:.0f} s"  # interpreter + torch import dominate
    assert not out.exists()


def _tar(path: Path, folder: Path, mode: str = "w") -> Path:
    with tarfile.open(path, mode) as archive:
        for file in sorted(folder.rglob("*.pth")):
            archive.add(file, arcname=str(file.relative_to(folder)))
    return path


def test_uncompressed_tar_is_read_as_tar(tmp_path, video_files) -> None:
    """The trap: the tar's last member is a torch.save file, itself a zip, so zipfile finds that
    zip's end record at the end of the tar; the kind must come from the content's start."""
    save_files(tmp_path / "tree" / "attn_adain_video", video_files)
    package = _tar(tmp_path / "package.tar", tmp_path / "tree")
    assert zipfile.is_zipfile(package), "the trap is no longer set up"
    model = import_published(package)
    assert model.config.variant == "video"


@pytest.mark.slow
@pytest.mark.parametrize("name", ["package.zip", "package"])
def test_tar_under_another_name_is_read_as_tar(tmp_path, video_files, name) -> None:
    save_files(tmp_path / "tree" / "v", video_files)
    package = _tar(tmp_path / name, tmp_path / "tree", "w:gz")
    assert import_published(package).config.variant == "video"


def test_tar_member_over_the_limit_is_refused_from_its_header(tmp_path, video_files) -> None:
    save_files(tmp_path / "tree", video_files)
    package = _tar(tmp_path / "p.tar", tmp_path / "tree")
    size = (tmp_path / "tree" / TRANSFORMER).stat().st_size
    limits = ArchiveLimits(max_member_bytes=size - 1, max_ratio=MAX_COMPRESSION_RATIO)
    with pytest.raises(ArchiveLimitError, match=f"declares {size} bytes"):
        archive_members(package, lambda name: name.endswith(TRANSFORMER), limits)
    # Members not asked for are listed past, never refused.
    assert archive_members(package, lambda name: False, limits) == []


def test_member_paths_are_never_used_on_disk(tmp_path, video_files) -> None:
    """Members named ``../../x/...`` are read in memory; nothing is written outside."""
    work = tmp_path / "work"
    work.mkdir()
    package = save_zip(
        work / "p.zip",
        {f"../../escape/{name}": state for name, state in video_files.items()},
        tmp_path / "scratch",
    )
    before = sorted(p for p in tmp_path.rglob("*") if p.is_file())
    assert import_published(package).config.variant == "video"
    assert sorted(p for p in tmp_path.rglob("*") if p.is_file()) == before
    assert not (tmp_path.parent / "escape").exists()


def test_limits_are_validated() -> None:
    with pytest.raises(ValueError, match="max_ratio"):
        ArchiveLimits(max_member_bytes=1, max_ratio=0.5)
    with pytest.raises(ValueError, match="max_member_bytes"):
        ArchiveLimits(max_member_bytes=0, max_ratio=2)


def test_not_an_archive_is_one_line(tmp_path, capsys) -> None:
    fake = tmp_path / "package.tar"
    fake.write_bytes(b"<html>quota exceeded</html>" * 20)
    line = main_error(["weights", "import", str(fake)], capsys)
    assert "not a zip (or tar) archive" in line
