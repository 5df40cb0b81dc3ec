"""Masks go through the one image reader: its pixel limit bounds them (a few-KB PNG can declare
225 megapixels), a mistake is one line, and a grayscale mask keeps its exact values."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from helpers.cli import main_error
from helpers.media import write_clip, write_contrast_styles
from PIL import Image

from streamer.regions.masks import MaskError, read_mask_image


def _bomb(path, side: int) -> str:
    Image.new("1", (side, side), 1).save(path)  # 1 bit per pixel while saving: cheap
    return str(path)


@pytest.mark.parametrize("side", [12000, 15000])  # over our limit; over Pillow's own too
def test_a_huge_mask_is_refused_by_the_pixel_limit(tmp_path, side) -> None:
    with pytest.raises(MaskError, match="megapixel"):
        read_mask_image(_bomb(tmp_path / "m.png", side))


def test_masks_read_like_pillows_grayscale(tmp_path) -> None:
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, (17, 23, 3), dtype=np.uint8)
    Image.fromarray(rgb).save(tmp_path / "rgb.png")
    expected = np.asarray(Image.fromarray(rgb).convert("L"), np.float32) / 255.0
    assert torch.equal(read_mask_image(tmp_path / "rgb.png"), torch.from_numpy(expected))
    gray = rng.integers(0, 256, (9, 5), dtype=np.uint8)
    Image.fromarray(gray).save(tmp_path / "gray.png")
    got = read_mask_image(tmp_path / "gray.png")
    assert torch.equal(got, torch.from_numpy(gray.astype(np.float32) / 255.0))


@pytest.mark.parametrize("where", ["mask", "style_mask"])
def test_render_and_image_refuse_a_huge_mask_in_one_line(tmp_path, capsys, where) -> None:
    styles = write_contrast_styles(tmp_path, mask_size=(32, 32))
    bomb = _bomb(tmp_path / "bomb.png", 15000)
    masks = {"mask": bomb, "style_mask": styles["left"]}
    if where == "style_mask":
        masks = {"mask": styles["left"], "style_mask": bomb}
    region = f"style={styles['warm']},mask={masks['mask']},style_mask={masks['style_mask']}"
    clip = write_clip(tmp_path / "in.mp4", frames=2, size=(32, 32), audio=False)
    out = tmp_path / "out.mp4"
    argv = ["render", str(clip.path), "-o", str(out), "--untrained", "--region", region]
    assert "megapixel" in main_error([*argv, "--no-progress"], capsys)
    assert not out.exists()
    argv = ["image", styles["cold"], "-o", str(tmp_path / "o.png"), "--untrained"]
    assert "megapixel" in main_error([*argv, "--region", region], capsys)
    assert not (tmp_path / "o.png").exists()


def test_a_big_mask_counts_in_the_memory_estimate(tmp_path, capsys) -> None:
    """A 7000x7000 mask (under the pixel limit) is decoded at its size: with a small
    --max-memory the command is refused before anything loads."""
    styles = write_contrast_styles(tmp_path, mask_size=(32, 32))
    big = _bomb(tmp_path / "big.png", 7000)
    region = f"style={styles['warm']},mask={big}"
    argv = ["image", styles["cold"], "-o", str(tmp_path / "o.png"), "--untrained"]
    argv += ["--style-size", "32", "--max-memory", "300M", "--device", "cpu"]
    line = main_error([*argv, "--region", region], capsys)
    assert "7000x7000" in line and "--max-memory" in line
    assert not (tmp_path / "o.png").exists()
