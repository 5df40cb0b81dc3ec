"""Downloading the published files from Google Drive (atomically) and importing them."""

from __future__ import annotations

import inspect
import logging
import os
import tempfile
from pathlib import Path

from adaattn_video.checkpoint import cache_dir
from adaattn_video.config import VARIANTS, Variant
from adaattn_video.errors import WeightsDownloadError
from adaattn_video.published.archives import archive_kind
from adaattn_video.published.catalog import DRIVE_IDS, VGG_FILE, drive_url, manual_download_hint
from adaattn_video.published.importer import import_weights
from adaattn_video.published.text import first_line

log = logging.getLogger(__name__)

DOWNLOAD_TIMEOUT_S = 60.0  # seconds without a byte before a download gives up


def _network_reason(err: BaseException) -> str:
    """A short reason for a failed request (requests' own messages run to several hundred
    characters)."""
    text = str(err)
    if "NameResolution" in text or "name resolution" in text.lower():
        return "cannot resolve drive.google.com: no internet connection?"
    import requests

    if isinstance(err, requests.Timeout):
        return f"no answer within {DOWNLOAD_TIMEOUT_S:.0f} s"
    if isinstance(err, requests.ConnectionError):
        return f"connection failed: {first_line(err)[:120]}"
    return f"{type(err).__name__}: {first_line(err)[:160]}"


def download_file(file_id: str, final: Path, *, quiet: bool = False) -> Path:
    """Download one Google Drive file to ``final`` atomically.

    The bytes go to a hidden temp file beside ``final`` which is renamed only when complete,
    so ``final`` never exists half-written; on any failure the temp file is removed.

    Raises:
        WeightsDownloadError: Google Drive unreachable, or it sent an empty file.
    """
    import gdown  # the published files sit behind Google Drive's confirm pages
    import requests

    gdown_errors = tuple(
        getattr(gdown.exceptions, name)
        for name in ("DownloadError", "FileURLRetrievalError")
        if hasattr(gdown.exceptions, name)
    )
    options: dict[str, object] = {"quiet": quiet}
    if "timeout" in inspect.signature(gdown.download).parameters:  # gdown >= 6
        options["timeout"] = DOWNLOAD_TIMEOUT_S  # a stalled connection fails instead of hanging
    final.parent.mkdir(parents=True, exist_ok=True)
    handle = tempfile.NamedTemporaryFile(  # noqa: SIM115 -- closed below, renamed on success
        dir=final.parent, prefix=f".{final.name}.", suffix=".part", delete=False
    )
    tmp = Path(handle.name)
    try:
        try:
            with handle:
                gdown.download(id=file_id, output=handle, **options)
                handle.flush()
                os.fsync(handle.fileno())
        except (requests.RequestException, *gdown_errors, OSError) as err:
            raise WeightsDownloadError(
                f"could not reach Google Drive for {drive_url(file_id)} ({_network_reason(err)})"
            ) from err
        if tmp.stat().st_size == 0:
            raise WeightsDownloadError(f"Google Drive sent an empty file for {drive_url(file_id)}")
        os.replace(tmp, final)
    finally:
        tmp.unlink(missing_ok=True)
    return final


def _package_name(variant: str) -> str:
    return f"adaattn_{variant}_package"


def download_published(
    variant: Variant = "video",
    cache: str | Path | None = None,
    *,
    force: bool = False,
    quiet: bool = False,
) -> Path:
    """Download the published ``variant`` model and import it into the cache.

    Files land in ``CACHE/published/`` (``vgg_normalised.pth`` and the package archive; a file
    already there is complete, thanks to the atomic rename, and is not fetched again unless
    ``force``), then are imported into ``CACHE/<variant>.safetensors``. Returns that path.

    Raises:
        WeightsDownloadError: Google Drive unreachable (one line saying how to do it by hand).
    """
    if variant not in VARIANTS:
        raise ValueError(f"variant must be one of {VARIANTS}, got {variant!r}")
    cache = Path(cache).expanduser() if cache is not None else cache_dir()
    folder = cache / "published"
    targets = {
        "vgg_normalised": folder / VGG_FILE,
        variant: folder / f"{_package_name(variant)}.zip",
    }
    # A package that turned out to be a tar archive was saved under a .tar name.
    tar_name = folder / f"{_package_name(variant)}.tar"
    if tar_name.is_file() and not force:
        targets[variant] = tar_name
    try:
        for key, target in targets.items():
            if target.is_file() and not force:
                log.info("using %s (already downloaded)", target)
                continue
            log.info("downloading %s from %s", target.name, drive_url(DRIVE_IDS[key]))
            download_file(DRIVE_IDS[key], target, quiet=quiet)
            if key == variant and target != tar_name and archive_kind(target) == "tar":
                targets[key] = target.replace(tar_name)
    except WeightsDownloadError as err:
        raise WeightsDownloadError(f"{err}; {manual_download_hint(variant)}") from err
    result = import_weights(
        list(targets.values()), cache / f"{variant}.safetensors", variant=variant
    )
    return result.path
