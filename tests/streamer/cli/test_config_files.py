"""``--config FILE.yaml`` for every command: YAML keys are option names, flags override them."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from helpers.cli import main_error
from PIL import Image

from adaattn_video.assets import DEFAULT_CONTENT, style_images
from streamer.cli import main


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_yaml_values_are_used_and_flags_replace_them(tmp_path) -> None:
    first, second = style_images()[:2]
    config = _write(
        tmp_path / "image.yaml",
        f"style: [{first}]\nstyle-size: 32\nsize: 48\noutput: {tmp_path / 'from_yaml.png'}\n"
        "untrained: true\nprecision: fp32\n",
    )
    assert main(["image", str(DEFAULT_CONTENT), "--config", str(config)]) == 0
    assert Image.open(tmp_path / "from_yaml.png").size == (48, 48)
    out = tmp_path / "from_flags.png"
    argv = ["image", str(DEFAULT_CONTENT), "--config", str(config), "--style", str(second)]
    assert main([*argv, "--size", "32", "-o", str(out)]) == 0
    assert Image.open(out).size == (32, 32)
    # The flag's style replaced the YAML list (not appended to it): same as the flag alone.
    alone = tmp_path / "alone.png"
    flags = ["--style-size", "32", "--size", "32", "--untrained", "--precision", "fp32"]
    assert (
        main(["image", str(DEFAULT_CONTENT), "--style", str(second), *flags, "-o", str(alone)]) == 0
    )
    assert np.array_equal(np.asarray(Image.open(out)), np.asarray(Image.open(alone)))


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("colour: red\n", "unknown key 'colour'"),
        ("- a\n- b\n", "expected a mapping"),
        ("style: [unclosed\n", "not valid YAML"),
    ],
)
def test_bad_config_files_are_one_line_errors(tmp_path, capsys, text: str, message: str) -> None:
    config = _write(tmp_path / "bad.yaml", text)
    argv = ["image", str(DEFAULT_CONTENT), "--untrained", "-o", str(tmp_path / "o.png")]
    assert message in main_error([*argv, "--config", str(config)], capsys)


def test_missing_config_file_and_missing_required_values(tmp_path, capsys) -> None:
    assert main(["image", str(DEFAULT_CONTENT), "--config", str(tmp_path / "none.yaml")]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert main(["image", str(DEFAULT_CONTENT), "--untrained", "-o", str(tmp_path / "o.png")]) == 2
    assert "--style" in capsys.readouterr().err
