"""What the published AdaAttN weights are: file names, where they come from, how big they are.

The Google Drive ids come from the reference repository's README (video package, image package
and ``vgg_normalised.pth``). The sizes bound what import reads from an archive: every published
file is at most ~80 MB, so a member declared far larger (or compressed far better than float
weights ever do) is refused before a byte of it is decompressed.
"""

from __future__ import annotations

VGG_FILE = "vgg_normalised.pth"
TRANSFORMER_FILE = "latest_net_transformer.pth"
DECODER_FILE = "latest_net_decoder.pth"
ADAATTN_3_FILE = "latest_net_adaattn_3.pth"
PUBLISHED_FILES: tuple[str, ...] = (VGG_FILE, TRANSFORMER_FILE, DECODER_FILE, ADAATTN_3_FILE)

# Google Drive file ids of the published packages.
DRIVE_IDS: dict[str, str] = {
    "video": "1ZrFPrbSR56WXL2l62Jh7qjmuaWugJtvL",
    "image": "1XvpD1eI4JeCBIaW5uwMT6ojF_qlzM_lo",
    "vgg_normalised": "1BinnwM5AmIcVubr16tPTqxMjUCE8iu5M",
}

MB = 1_000_000
# Real sizes of the published files (float32 state dicts, from the architecture's parameter
# counts): vgg_normalised.pth 80.1 MB (all 53 modules, 20.0 M parameters); the video
# transformer 1.9 MB (448x448 f/g, 256x256 h) and decoder 9.3 MB; the image model's adaattn_3
# 1.9 MB, transformer 36.3 MB (attention at relu4_1 and relu5_1, 3x3 merge conv) and decoder
# 16.4 MB.
LARGEST_PUBLISHED_BYTES = 80 * MB
# Limits on an archive member named like a published file, checked from the archive's headers
# before anything is decompressed: 6x the largest real file, and a compression ratio float
# weights never reach (random-looking mantissas deflate to ~90 % of their size).
MAX_MEMBER_BYTES = 512 * 2**20
MAX_COMPRESSION_RATIO = 20.0
RATIO_CHECK_FROM_BYTES = 1 * 2**20  # tiny members may compress well (headers, zero biases)


def drive_url(file_id: str) -> str:
    """The Google Drive download URL of ``file_id``."""
    return f"https://drive.google.com/uc?id={file_id}"


def manual_download_hint(variant: str) -> str:
    """What to do by hand when a download fails or files are missing."""
    return (
        f"download {drive_url(DRIVE_IDS[variant])} (the {variant} package) and "
        f"{drive_url(DRIVE_IDS['vgg_normalised'])} ({VGG_FILE}) by hand and run "
        "`stylestream weights import DIR_OR_ZIP`"
    )
