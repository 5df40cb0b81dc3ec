"""The one image reader: decompression bombs refused from the header, big paintings reduced on
decode when the needed size is known, 16-bit PNGs scaled (not clipped)."""

from __future__ import annotations

import resource
import struct
import time
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from adaattn_video.assets import DEFAULT_CONTENT
from adaattn_video.errors import ImageReadError, ImageTooLargeError
from adaattn_video.image_io import MAX_IMAGE_PIXELS, read_image
from adaattn_video.stylizer import to_image_tensor
from streamer.cli import main


@pytest.fixture(scope="module")
def bomb(tmp_path_factory) -> Path:
    """15000x15000 (225 megapixels) 1-bit PNG: ~30 KB on disk, 675 MB as RGB."""
    path = tmp_path_factory.mktemp("bomb") / "bomb.png"
    Image.new("1", (15000, 15000)).save(path)
    assert path.stat().st_size < 100_000
    return path


def _peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def test_decompression_bomb_is_refused_in_one_line(bomb) -> None:
    before, start = _peak_mib(), time.perf_counter()
    with pytest.raises(ImageTooLargeError) as err:
        read_image(bomb)
    assert time.perf_counter() - start < 1.0
    assert _peak_mib() - before < 100
    message = str(err.value)
    assert "\n" not in message and str(bomb) in message
    assert (
        f"{MAX_IMAGE_PIXELS / 1e6:.0f}-megapixel limit" in message and "225 megapixels" in message
    )
    assert isinstance(err.value, ImageReadError)


def test_cli_style_bomb_is_one_error_line(bomb, tmp_path, capsys) -> None:
    out = tmp_path / "out.png"
    before, start = _peak_mib(), time.perf_counter()
    code = main(
        ["image", str(DEFAULT_CONTENT), "--style", str(bomb), "--untrained", "-o", str(out)]
    )
    assert code == 2
    assert time.perf_counter() - start < 10
    assert _peak_mib() - before < 500
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith("stylestream: error:")]
    assert len(lines) == 1 and "megapixel" in lines[0] and "Traceback" not in err, err
    assert not out.exists()


@pytest.fixture(scope="module")
def big_jpeg(tmp_path_factory) -> Path:
    """9000x6000 (54 megapixels, over the limit when decoded at full size)."""
    path = tmp_path_factory.mktemp("big") / "painting.jpg"
    Image.new("L", (9000, 6000), 140).save(path, quality=60)
    return path


def test_png_over_the_pixel_limit_is_refused_before_decoding(tmp_path) -> None:
    path = tmp_path / "wide.png"
    Image.new("1", (10000, 5001)).save(path)  # 50.01 MP: just over, and Pillow only warns
    start = time.perf_counter()
    with pytest.raises(ImageTooLargeError, match="10000x5001"):
        read_image(path, max_side=512)  # PNG cannot be decoded at a smaller scale
    assert time.perf_counter() - start < 1.0


def test_big_jpeg_is_decoded_reduced_when_the_size_is_known(big_jpeg) -> None:
    with pytest.raises(ImageTooLargeError):
        read_image(big_jpeg)  # native size: 54 MP
    before = _peak_mib()
    image = read_image(big_jpeg, max_side=512)
    assert _peak_mib() - before < 100  # a full decode would take 54 MB (gray) + 162 MB (RGB)
    assert 512 <= max(image.shape[-2:]) < 1024
    h, w = image.shape[-2:]
    assert abs(w / h - 1.5) < 0.01
    assert abs(image.float().mean().item() - 140) < 3


def test_png_is_reduced_by_an_integer_factor(tmp_path) -> None:
    path = tmp_path / "p.png"
    Image.new("RGB", (3000, 2000), (10, 200, 90)).save(path)
    image = read_image(path, max_side=500)
    assert tuple(image.shape) == (3, 334, 500)  # factor 6, never below max_side
    assert image[:, 100, 100].tolist() == [10, 200, 90]
    assert tuple(read_image(path).shape) == (3, 2000, 3000)
    assert tuple(read_image(path, max_side=4000).shape) == (3, 2000, 3000)


def _png16(path: Path, pixels: np.ndarray) -> Path:
    """A 16-bit PNG written byte by byte (Pillow cannot write 16-bit RGB): (H, W) gray or
    (H, W, 3) RGB uint16."""
    height, width = pixels.shape[:2]
    color_type = 0 if pixels.ndim == 2 else 2
    rows = pixels.astype(">u2").reshape(height, -1)
    raw = b"".join(b"\x00" + row.tobytes() for row in rows)

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(kind + data) & 0xFFFFFFFF
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)

    header = struct.pack(">IIBBBBB", width, height, 16, color_type, 0, 0, 0)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(raw))
        + chunk(b"IEND", b"")
    )
    return path


def _expected8(values: np.ndarray) -> np.ndarray:
    return np.round(values.astype(np.float64) * 255 / 65535)


def test_16_bit_grayscale_png_is_scaled_not_clipped(tmp_path) -> None:
    gray = (np.arange(32 * 48, dtype=np.uint32).reshape(32, 48) * 42).astype(np.uint16)
    path = _png16(tmp_path / "g16.png", gray)
    assert Image.open(path).mode == "I;16"
    image = read_image(path)
    assert tuple(image.shape) == (3, 32, 48)
    assert np.array_equal(image[0].numpy(), image[2].numpy())
    assert np.abs(image[0].numpy() - _expected8(gray)).max() <= 1
    assert image.float().mean().item() < 200  # was ~255 (nearly white) when clipped
    # The stylizer reads style paths through the same reader.
    assert torch_equal(to_image_tensor(path), image)


def test_16_bit_rgb_png_is_scaled(tmp_path) -> None:
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 65536, size=(20, 30, 3), dtype=np.uint16)
    image = read_image(_png16(tmp_path / "rgb16.png", rgb))
    assert tuple(image.shape) == (3, 20, 30)
    assert np.abs(image.permute(1, 2, 0).numpy() - _expected8(rgb)).max() <= 1


def test_cli_16_bit_content_is_used(tmp_path, capsys) -> None:
    gray = np.full((32, 32), 20000, dtype=np.uint16)
    content = _png16(tmp_path / "c16.png", gray)
    out = tmp_path / "out.png"
    style = _png16(tmp_path / "s16.png", gray)
    assert main(["image", str(content), "--style", str(style), "--untrained", "-o", str(out)]) == 0
    assert Image.open(out).size == (32, 32)


def test_max_side_is_validated(tmp_path) -> None:
    with pytest.raises(ValueError, match="max_side"):
        read_image(DEFAULT_CONTENT, max_side=0)


def torch_equal(a, b) -> bool:
    return a.shape == b.shape and bool((a == b).all())
