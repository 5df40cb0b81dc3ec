"""One guard for every path a command reads and writes (streamer.guard.guard_declared): an input
is never an output, ``--overwrite`` or not; every output is checked before the work starts."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from helpers.cli import main_error
from helpers.media import write_clip, write_contrast_styles

from streamer.guard import declared_paths


def _bytes(path: Path) -> bytes:
    return path.read_bytes()


# -- export onnx (rows 1, 7, 14) ---------------------------------------------------------------
def test_export_never_writes_over_its_checkpoint_or_config(tmp_path, capsys) -> None:
    weights = tmp_path / "W.safetensors"
    weights.write_bytes(b"not really weights")
    line = main_error(["export", "onnx", str(weights), "-o", str(weights), "--overwrite"], capsys)
    assert "would overwrite the input" in line and str(weights) in line
    assert weights.read_bytes() == b"not really weights"
    config = tmp_path / "c.yaml"
    config.write_text("untrained: true\n")
    line = main_error(
        ["export", "onnx", "--config", str(config), "-o", str(config), "--overwrite"], capsys
    )
    assert "would overwrite the input" in line
    assert config.read_text() == "untrained: true\n"


def test_export_refuses_an_existing_style_graph_without_overwrite(tmp_path, capsys) -> None:
    (tmp_path / "X-style.onnx").write_bytes(b"old")
    line = main_error(["export", "onnx", "--untrained", "-o", str(tmp_path / "X.onnx")], capsys)
    assert "X-style.onnx" in line and "--overwrite" in line
    assert (tmp_path / "X-style.onnx").read_bytes() == b"old"
    assert not (tmp_path / "X.onnx").exists()


@pytest.mark.parametrize("where", ["parent_is_file", "output_is_folder", "unwritable"])
def test_export_path_mistakes_are_refused_before_the_export(tmp_path, capsys, where) -> None:
    if where == "parent_is_file":
        (tmp_path / "f").write_text("x")
        output = tmp_path / "f" / "m.onnx"
    elif where == "output_is_folder":
        output = tmp_path / "m.onnx"
        output.mkdir()
    else:
        if os.geteuid() == 0:
            pytest.skip("root writes into read-only folders")
        (tmp_path / "ro").mkdir(mode=0o555)
        output = tmp_path / "ro" / "m.onnx"
    main_error(["export", "onnx", "--untrained", "-o", str(output)], capsys)
    assert sorted(p.name for p in tmp_path.rglob("*") if "partial" in p.name) == []


@pytest.mark.parametrize("repeats", ["0", "-1", "nan"])
def test_export_refuses_bad_repeat_counts(tmp_path, capsys, repeats) -> None:
    argv = ["export", "onnx", "--untrained", "-o", str(tmp_path / "m.onnx"), "--bench", "64x64"]
    line = main_error([*argv, "--repeats", repeats], capsys)
    assert "repeats" in line
    assert not (tmp_path / "m.onnx").exists()


def test_export_declares_its_derived_output_and_config(tmp_path) -> None:
    from streamer.cli.export_commands import ExportOnnxOptions

    options = ExportOnnxOptions(output="a/X.onnx", weights="W.safetensors", config_file="c.yaml")
    paths = declared_paths(options)
    assert paths.outputs == ("a/X.onnx", "a/X-style.onnx")
    assert set(paths.inputs) == {"W.safetensors", "c.yaml"}


# -- regions are inputs (row 2) ----------------------------------------------------------------
@pytest.fixture
def region_files(tmp_path):
    clip = write_clip(tmp_path / "in.mp4", frames=4, size=(32, 32), audio=False)
    mask = write_clip(tmp_path / "m.mp4", frames=4, size=(32, 32), audio=False)
    styles = write_contrast_styles(tmp_path, mask_size=(32, 32))
    return Path(clip.path), Path(mask.path), styles


@pytest.mark.parametrize("which", ["mask_video", "region_style", "style_mask"])
def test_render_never_writes_over_a_region_file(region_files, tmp_path, capsys, which) -> None:
    clip, mask_video, styles = region_files
    region = f"style={styles['warm']},mask={mask_video},style_mask={styles['left']}"
    target = {"mask_video": mask_video, "region_style": Path(styles["warm"]),
              "style_mask": Path(styles["left"])}[which]  # fmt: skip
    if target.suffix == ".png":
        # a PNG output is a frames pattern: give the output as a video name linked to it
        link = tmp_path / "out.mp4"
        os.link(target, link)
        output = link
    else:
        output = target
    before = _bytes(target)
    argv = ["render", str(clip), "-o", str(output), "--untrained", "--region", region]
    line = main_error([*argv, "--overwrite", "--no-progress"], capsys)
    assert "overwrite the input" in line
    assert _bytes(target) == before


@pytest.mark.parametrize("which", ["mask", "style_mask", "region_style"])
def test_image_never_writes_over_a_region_file(tmp_path, capsys, which) -> None:
    styles = write_contrast_styles(tmp_path, mask_size=(32, 32))
    (tmp_path / "sm.png").write_bytes(Path(styles["left"]).read_bytes())
    region = f"style={styles['warm']},mask={styles['left']},style_mask={tmp_path / 'sm.png'}"
    target = {"mask": Path(styles["left"]), "style_mask": tmp_path / "sm.png",
              "region_style": Path(styles["warm"])}[which]  # fmt: skip
    before = _bytes(target)
    argv = ["image", styles["cold"], "--untrained", "--region", region]
    line = main_error([*argv, "-o", str(target), "--overwrite"], capsys)
    assert "overwrite the input" in line
    assert _bytes(target) == before


def test_region_files_are_declared_inputs() -> None:
    from streamer.cli.region_options import RegionOptions

    options = RegionOptions(
        region=("style=s.jpg,mask=m.mp4,style_mask=sm.png", "style=t.jpg,key=green")
    )
    inputs = declared_paths(options).inputs
    assert set(inputs) == {"s.jpg", "m.mp4", "sm.png", "t.jpg"}
