"""The model commands: ``image``, ``info``, ``weights import|download`` and ``bench model``.

Run in-process through ``streamer.cli.main`` (fast), plus one real subprocess for the exit code
and the stderr line. Untrained (random) models: outputs are checked for size, never for style.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from helpers.cli import one_error_line
from helpers.published import model_from_state_dicts, save_files, video_package
from PIL import Image

from adaattn_video.assets import DEFAULT_CONTENT, DEFAULT_STYLE, style_images
from adaattn_video.checkpoint import CACHE_ENV, load_checkpoint, open_model, save_checkpoint
from adaattn_video.image_io import read_image
from adaattn_video.weights import DRIVE_IDS
from streamer.cli import main


@pytest.fixture(autouse=True)
def empty_cache(tmp_path, monkeypatch) -> Path:
    """Every test sees its own empty weights cache, never the user's."""
    cache = tmp_path / "cache"
    monkeypatch.setenv(CACHE_ENV, str(cache))
    return cache


def _small_content(path: Path, height: int, width: int) -> Path:
    """An odd-sized crop of the bundled content photo (odd sides exercise pad and crop)."""
    crop = read_image(DEFAULT_CONTENT)[:, :height, :width].permute(1, 2, 0).numpy()
    Image.fromarray(crop).save(path)
    return path


# -- image -------------------------------------------------------------------------------------
def test_image_on_bundled_images_keeps_the_content_size(tmp_path) -> None:
    out = tmp_path / "out.png"
    code = main(
        [
            "image", str(DEFAULT_CONTENT), "--style", str(DEFAULT_STYLE), "--style-size", "64",
            "--untrained", "--device", "cpu", "-o", str(out),
        ]
    )  # fmt: skip
    assert code == 0
    written = read_image(out)
    assert written.shape == read_image(DEFAULT_CONTENT).shape == (3, 512, 512)
    assert written.float().std() > 1.0, "a flat image means the pipeline lost the content"


def test_image_native_size_of_an_odd_sized_content(tmp_path, capsys) -> None:
    content = _small_content(tmp_path / "c.png", 50, 70)
    out = tmp_path / "sub" / "out.png"
    code = main(
        [
            "image", str(content), "--style", str(DEFAULT_STYLE), "--style-size", "48",
            "--untrained", "--device", "cpu", "-o", str(out),
        ]
    )  # fmt: skip
    assert code == 0
    assert read_image(out).shape == (3, 50, 70)
    stdout = capsys.readouterr().out
    assert f"wrote {out} (70x50)" in stdout and "UNTRAINED" in stdout


@pytest.mark.parametrize(
    ("size", "expected_hw"), [("64", (46, 64)), ("40x24", (24, 40)), ("33", (24, 33))]
)
def test_image_size_option(tmp_path, size, expected_hw) -> None:
    """N = longer side (aspect kept); WxH = exact width and height."""
    content = _small_content(tmp_path / "c.png", 50, 70)
    out = tmp_path / "out.jpg"
    argv = ["image", str(content), "--style", str(DEFAULT_STYLE), "--style-size", "32"]
    argv += ["--size", size, "--untrained", "--device", "cpu", "-o", str(out)]
    assert main(argv) == 0
    assert tuple(read_image(out).shape[-2:]) == expected_hw


def test_image_style_mix_and_alpha(tmp_path) -> None:
    content = _small_content(tmp_path / "c.png", 32, 48)
    styles = [str(p) for p in style_images()[:2]]
    outs = []
    for alpha in ("1.0", "0.0"):
        out = tmp_path / f"out{alpha}.png"
        argv = ["image", str(content), "--style", styles[0], "--style", styles[1]]
        argv += ["--style-weights", "0.7", "0.3", "--style-size", "32", "--alpha", alpha]
        argv += ["--untrained", "--device", "cpu", "-o", str(out)]
        assert main(argv) == 0
        outs.append(np.asarray(Image.open(out)).astype(np.int16))
    assert outs[0].shape == outs[1].shape == (32, 48, 3)
    assert np.abs(outs[0] - outs[1]).max() > 0, "alpha must change the output"


def test_image_style_weight_count_mismatch(tmp_path, capsys) -> None:
    content = _small_content(tmp_path / "c.png", 32, 32)
    argv = ["image", str(content), "--style", str(DEFAULT_STYLE), "--style-weights", "0.5", "0.5"]
    assert main([*argv, "--untrained", "-o", str(tmp_path / "o.png")]) == 2
    assert "expected 1 style weights (one per --style), got 2" in one_error_line(capsys)


def test_image_without_weights_says_how_to_get_them(tmp_path, capsys, empty_cache) -> None:
    content = _small_content(tmp_path / "c.png", 32, 32)
    out = tmp_path / "o.png"
    assert main(["image", str(content), "--style", str(DEFAULT_STYLE), "-o", str(out)]) == 2
    line = one_error_line(capsys)
    assert str(empty_cache) in line and "stylestream weights download" in line
    assert "stylestream weights import" in line and "--untrained" in line
    assert not out.exists()


def test_image_model_without_cached_image_weights(tmp_path, capsys) -> None:
    content = _small_content(tmp_path / "c.png", 32, 32)
    argv = ["image", str(content), "--style", str(DEFAULT_STYLE), "--model", "image"]
    assert main([*argv, "-o", str(tmp_path / "o.png")]) == 2
    assert "weights download --variant image" in one_error_line(capsys)


@pytest.mark.parametrize("which", ["content", "style"])
def test_image_bad_image_path(tmp_path, capsys, which) -> None:
    content, style = str(DEFAULT_CONTENT), str(DEFAULT_STYLE)
    missing = str(tmp_path / "missing.jpg")
    argv = ["image", missing if which == "content" else content]
    argv += ["--style", missing if which == "style" else style, "--style-size", "32"]
    argv += ["--size", "32", "--untrained", "--device", "cpu", "-o", str(tmp_path / "o.png")]
    assert main(argv) == 2
    assert f"image {missing} does not exist" in one_error_line(capsys)
    assert not (tmp_path / "o.png").exists()


def test_image_undecodable_style(tmp_path, capsys) -> None:
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"not a jpeg at all")
    argv = ["image", str(DEFAULT_CONTENT), "--style", str(broken), "--size", "32"]
    assert main([*argv, "--untrained", "--device", "cpu", "-o", str(tmp_path / "o.png")]) == 2
    assert f"image {broken} could not be decoded" in one_error_line(capsys)


def test_image_unknown_output_type(tmp_path, capsys) -> None:
    argv = ["image", str(DEFAULT_CONTENT), "--style", str(DEFAULT_STYLE), "--untrained"]
    assert main([*argv, "-o", str(tmp_path / "o.xyz")]) == 2
    assert "unknown image type '.xyz'" in one_error_line(capsys)


def test_image_with_an_imported_checkpoint_matches_the_published_model(tmp_path) -> None:
    files = video_package(seed=7, vgg_last_index=17)
    save_files(tmp_path / "published", files)
    weights = tmp_path / "video.safetensors"
    assert main(["weights", "import", str(tmp_path / "published"), "-o", str(weights)]) == 0
    content = _small_content(tmp_path / "c.png", 32, 48)
    out = tmp_path / "o.png"
    argv = ["image", str(content), "--style", str(DEFAULT_STYLE), "--style-size", "32"]
    argv += ["--device", "cpu", "--precision", "fp32"]  # exact comparison with the fp32 model
    assert main([*argv, "--weights", str(weights), "-o", str(out)]) == 0
    # The same picture through the model built directly from the state dicts.
    from adaattn_video.stylizer import FrameStylizer, StylizerConfig

    stylizer = FrameStylizer(model_from_state_dicts("video", files), StylizerConfig(style_size=32))
    stylizer.set_style(DEFAULT_STYLE)
    expected = stylizer(read_image(content).permute(1, 2, 0).numpy())
    assert np.array_equal(np.asarray(Image.open(out)), expected)


# -- weights -----------------------------------------------------------------------------------
def test_weights_import_defaults_to_the_cache(tmp_path, capsys, empty_cache) -> None:
    save_files(tmp_path / "published", video_package(seed=8, vgg_last_index=17))
    assert main(["weights", "import", str(tmp_path / "published")]) == 0
    out = capsys.readouterr().out
    cached = empty_cache / "video.safetensors"
    assert f"wrote {cached} (video model)" in out and "sha256" in out
    assert load_checkpoint(cached).config.variant == "video"
    # ... and the other commands now find it without --weights.
    content = _small_content(tmp_path / "c.png", 32, 32)
    argv = ["image", str(content), "--style", str(DEFAULT_STYLE), "--style-size", "32"]
    assert main([*argv, "--device", "cpu", "-o", str(tmp_path / "o.png")]) == 0


def test_weights_import_refusal_is_one_line(tmp_path, capsys) -> None:
    files = video_package(seed=9, vgg_last_index=17)
    files["latest_net_transformer.pth"] = {
        "f.weight": files["latest_net_transformer.pth"]["f.weight"]
    }
    save_files(tmp_path / "published", files)
    assert main(["weights", "import", str(tmp_path / "published")]) == 2
    line = one_error_line(capsys)
    assert "latest_net_transformer.pth: missing 5 key(s)" in line


def test_weights_import_needs_a_safetensors_output(tmp_path, capsys) -> None:
    assert main(["weights", "import", str(tmp_path), "-o", str(tmp_path / "x.pth")]) == 2
    assert "must be a .safetensors file" in one_error_line(capsys)


def test_weights_download_offline(monkeypatch, capsys, empty_cache) -> None:
    """No internet here: gdown.download (the network call) is mocked to fail as offline."""
    import gdown
    import requests

    def offline(*, id, output, **options):
        raise requests.exceptions.ConnectionError("Failed to resolve 'drive.google.com'")

    monkeypatch.setattr(gdown, "download", offline)
    assert main(["weights", "download"]) == 2
    line = one_error_line(capsys)
    assert "could not reach Google Drive" in line and DRIVE_IDS["video"] in line
    assert "stylestream weights import" in line
    assert not (empty_cache / "video.safetensors").exists()


# -- info --------------------------------------------------------------------------------------
def test_info_prints_config_metadata_and_counts(tmp_path, capsys) -> None:
    model = open_model(None, untrained=True)
    path = save_checkpoint(model, tmp_path / "m.safetensors", {"source": "unit test"})
    assert main(["info", str(path)]) == 0
    out = capsys.readouterr().out
    assert "variant=video" in out and "encoder_family=vgg_normalised" in out
    assert "attention=cosine" in out and "source: unit test" in out
    assert f"tensors: {len(model.state_dict())}" in out
    total = sum(t.numel() for t in model.state_dict().values())
    assert f"parameters: {total / 1e6:.2f} M" in out
    assert main(["info", str(path), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["total_parameters"] == total
    assert info["parameters"]["encoder"] == sum(p.numel() for p in model.encoder.parameters())


def test_info_on_a_pth_file_says_to_import_it(tmp_path, capsys) -> None:
    save_files(tmp_path, {"latest_net_decoder.pth": video_package()["latest_net_decoder.pth"]})
    assert main(["info", str(tmp_path / "latest_net_decoder.pth")]) == 2
    assert "stylestream weights import" in one_error_line(capsys)


# -- bench -------------------------------------------------------------------------------------
@pytest.mark.slow
def test_bench_model_prints_every_row(tmp_path, capsys) -> None:
    report = tmp_path / "bench.json"
    argv = ["bench", "model", "--sizes", "48x32", "40x36", "--style-size", "32"]
    argv += ["--large-style-size", "64", "--repeats", "1", "--warmup", "0", "--device", "cpu"]
    assert main([*argv, "--json", str(report)]) == 0
    out = capsys.readouterr().out
    assert "| published" in out and "| ours" in out and "| conv-only" in out
    assert "speedup cpu fp32 48x32" in out and "style 64/32 time ratio cpu fp32 40x36" in out
    rows = json.loads(report.read_text())["rows"]
    forms = [(r["content"], r["form"], r["style"]) for r in rows]
    for size in ([32, 48], [36, 40]):  # JSON keeps (height, width)
        assert (size, "published", 32) in forms
        assert (size, "ours", 32) in forms and (size, "ours", 64) in forms
        assert (size, "conv-only", None) in forms
    assert all(r["ms"] > 0 for r in rows)


# -- a real process ----------------------------------------------------------------------------
@pytest.mark.slow
def test_subprocess_exit_code_and_one_stderr_line(tmp_path) -> None:
    script = Path(sys.executable).with_name("stylestream")
    command = [str(script)] if script.exists() else [shutil.which("stylestream") or "stylestream"]
    missing = tmp_path / "missing.jpg"
    argv = ["image", str(missing), "--style", str(DEFAULT_STYLE), "--untrained"]
    result = subprocess.run(
        [*command, *argv, "-o", str(tmp_path / "o.png")],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, CACHE_ENV: str(tmp_path / "cache")},
    )
    assert result.returncode == 2
    assert (
        result.stderr.strip()
        == f"stylestream: error: image {missing} does not exist (give a JPEG or PNG file)"
    )
    assert "Traceback" not in result.stderr
