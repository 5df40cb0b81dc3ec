"""Getting weights: the public names of :mod:`adaattn_video.published`, in one place.

``from adaattn_video.weights import import_weights, download_published, ...`` keeps working;
each name lives in the module of :mod:`adaattn_video.published` that does that one job
(archives, safe loading, layouts, import, downloads, loss-encoder weights).
"""

from __future__ import annotations

from adaattn_video.errors import ArchiveLimitError, WeightsDownloadError
from adaattn_video.published.archives import ArchiveLimits, ArchiveMember, archive_members
from adaattn_video.published.catalog import (
    ADAATTN_3_FILE,
    DECODER_FILE,
    DRIVE_IDS,
    LARGEST_PUBLISHED_BYTES,
    MAX_COMPRESSION_RATIO,
    MAX_MEMBER_BYTES,
    PUBLISHED_FILES,
    TRANSFORMER_FILE,
    VGG_FILE,
    drive_url,
)
from adaattn_video.published.downloads import DOWNLOAD_TIMEOUT_S, download_published
from adaattn_video.published.encoders import load_encoder_weights
from adaattn_video.published.files import FoundFile, find_published_files
from adaattn_video.published.importer import (
    ImportResult,
    ModelFiles,
    cached_checkpoint,
    import_published,
    import_weights,
)
from adaattn_video.published.layouts import transformer_variant
from adaattn_video.published.safe_load import load_state_dict_safe

__all__ = [
    "ADAATTN_3_FILE",
    "DECODER_FILE",
    "DOWNLOAD_TIMEOUT_S",
    "DRIVE_IDS",
    "LARGEST_PUBLISHED_BYTES",
    "MAX_COMPRESSION_RATIO",
    "MAX_MEMBER_BYTES",
    "PUBLISHED_FILES",
    "TRANSFORMER_FILE",
    "VGG_FILE",
    "ArchiveLimitError",
    "ArchiveLimits",
    "ArchiveMember",
    "FoundFile",
    "ImportResult",
    "ModelFiles",
    "WeightsDownloadError",
    "archive_members",
    "cached_checkpoint",
    "download_published",
    "drive_url",
    "find_published_files",
    "import_published",
    "import_weights",
    "load_encoder_weights",
    "load_state_dict_safe",
    "transformer_variant",
]
