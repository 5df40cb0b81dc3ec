"""One settings model: StylizerSpec, the device/precision resolvers, the typed converter and the
one YAML loader, and the command-line errors they give (one ``stylestream: error:`` line,
exit 2, quickly, nothing written)."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from adaattn_video.assets import DEFAULT_STYLE
from adaattn_video.config import ModelConfig
from adaattn_video.settings import (
    StylizerSettingError,
    StylizerSpec,
    check_style_weights,
    cpu_has_fast_bf16,
    parse_size,
    resolve_device,
    resolve_precision,
)
from configkit.convert import ConfigError, from_mapping, to_mapping
from configkit.yaml_loader import MAX_CONFIG_BYTES, load_yaml_file, parse_yaml_text
from streamer.cli import main

STYLE = str(DEFAULT_STYLE)
CLIP = "lavfi:testsrc2=size=64x48:rate=10:duration=1"
CONFIGS = Path(__file__).resolve().parents[2] / "configs"

BILLION_LAUGHS = "a: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n" + "".join(
    f"{n}: &{n} [{', '.join(['*' + p] * 9)}]\n" for p, n in zip("abcdefgh", "bcdefghi", strict=True)
)


def one_error_line(capsys: pytest.CaptureFixture[str]) -> str:
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(err) == 1 and err[0].startswith("stylestream: error: "), err
    return err[0]


# -- the spec and the resolvers -----------------------------------------------------------------
def test_spec_checks_every_setting_once() -> None:
    spec = StylizerSpec(styles=("a.jpg", "b.jpg"), style_weights=(0.7, 0.3), size=(48, 64))
    assert spec.device == "auto" and spec.style_size == 512
    for bad, words in [
        ({"style_weights": (float("nan"),)}, "finite"),
        ({"style_weights": (float("inf"),)}, "finite"),
        ({"style_weights": (-1.0, 2.0)}, ">= 0"),
        ({"style_weights": (0.0, 0.0)}, "positive sum"),
        ({"styles": ("a.jpg",), "style_weights": (1.0, 1.0)}, "expected 1 style weights"),
        ({"alpha": float("nan")}, "alpha"),
        ({"alpha": 1.5}, "alpha"),
        ({"device": "gpu0"}, "device must be"),
        ({"precision": "fp8"}, "precision"),
        ({"style_size": 8}, "style_size"),
        ({"size": (8, 64)}, "size"),
        ({"weights": "w.safetensors", "untrained": True}, "not both"),
    ]:
        with pytest.raises(StylizerSettingError, match=words):
            StylizerSpec(**bad)


def test_style_weights_check_is_shared_by_the_stylizer(untrained_stylizer) -> None:
    """FrameStylizer.set_style (used by the control endpoint) refuses what the spec refuses."""
    for weights in ([float("nan"), 1.0], [float("inf"), 1.0], [0.0, 0.0]):
        with pytest.raises(StylizerSettingError, match="finite numbers >= 0"):
            untrained_stylizer.set_style([STYLE, STYLE], weights)
    assert check_style_weights([1, 3], 2) == [0.25, 0.75]


def test_device_resolver() -> None:
    assert resolve_device("auto") in ("cuda", "mps", "cpu")
    assert resolve_device("CPU") == "cpu"
    with pytest.raises(StylizerSettingError, match="device must be"):
        resolve_device("mps:1")
    if not torch.cuda.is_available():
        for device in ("cuda", "cuda:0", "cuda:3"):
            with pytest.raises(StylizerSettingError, match="CUDA is not available"):
                resolve_device(device)
    backend = getattr(torch.backends, "mps", None)
    if backend is None or not backend.is_available():
        with pytest.raises(StylizerSettingError, match="MPS is not available"):
            resolve_device("mps")


def test_precision_resolver_is_the_same_for_every_command() -> None:
    native = "bf16" if cpu_has_fast_bf16() else "fp32"
    assert resolve_precision("auto", "cpu") == native
    assert resolve_precision("auto", "cuda:1") == "fp16"
    assert resolve_precision("auto", "mps") == "fp16"  # never bf16 on MPS
    assert resolve_precision("auto", "cpu", training=True) == "fp32"
    assert resolve_precision("auto", "mps", training=True) == "fp32"
    assert resolve_precision("auto", "cuda", training=True) == "fp16"
    with pytest.raises(StylizerSettingError, match="needs a CUDA device"):
        resolve_precision("fp16", "cpu", training=True)
    assert resolve_precision("bf16", "cpu") == "bf16"
    spec = StylizerSpec(device="cpu").resolved()
    assert (spec.device, spec.precision) == ("cpu", native)


def test_eval_and_render_resolve_auto_precision_alike(tmp_path: Path, capsys) -> None:
    """`eval --precision auto` used to be fp32 on a bf16-capable CPU while render used bf16."""
    out = tmp_path / "report.json"
    argv = ["eval", "--synthetic", "static", "--frames", "2", "--size", "32x32",
            "--untrained", "video", "--style-size", "32", "--device", "cpu", "--json", str(out)]  # fmt: skip
    assert main(argv) == 0
    report = json.loads(out.read_text())
    assert (report["device"], report["precision"]) == ("cpu", resolve_precision("auto", "cpu"))
    assert f"models on cpu {report['precision']}" in capsys.readouterr().out


# -- the converter ------------------------------------------------------------------------------
def test_converter_types_flat_keys_and_round_trip() -> None:
    spec = from_mapping(
        StylizerSpec,
        {"style": "a.jpg", "style-weights": ["1"], "alpha": "0.5", "size": "64x48",
         "untrained": "yes", "style_size": None},
    )  # fmt: skip
    assert spec.styles == ("a.jpg",) and spec.style_weights == (1.0,) and spec.alpha == 0.5
    assert spec.size == (48, 64) and spec.untrained and spec.style_size is None
    assert from_mapping(StylizerSpec, to_mapping(spec)) == spec
    assert parse_size("512") == 512 and parse_size([640, 360]) == (360, 640)
    with pytest.raises(ConfigError, match=r"unknown key\(s\) \['colour'\]"):
        from_mapping(StylizerSpec, {"colour": 1})
    with pytest.raises(ConfigError, match="alpha: expected a number"):
        from_mapping(StylizerSpec, {"alpha": "nan"})
    assert ModelConfig.from_json('{"variant": "image"}').variant == "image"
    with pytest.raises(ValueError, match="unknown key"):
        ModelConfig.from_json('{"variant": "image", "extra": 1}')


# -- the YAML loader ----------------------------------------------------------------------------
def test_yaml_loader_refuses_aliases_repeats_size_and_directories(tmp_path: Path) -> None:
    laughs = tmp_path / "laughs.yaml"
    laughs.write_text(BILLION_LAUGHS)
    started = time.perf_counter()
    with pytest.raises(ConfigError, match="anchors and aliases"):
        load_yaml_file(laughs)
    assert time.perf_counter() - started < 1.0
    with pytest.raises(ConfigError, match="'style_size' appears more than once"):
        parse_yaml_text("style_size: 1\nstyle_size: 2\n")
    with pytest.raises(ConfigError, match="is a directory"):
        load_yaml_file(tmp_path)
    big = tmp_path / "big.yaml"
    big.write_text("a: " + "x" * MAX_CONFIG_BYTES + "\n")
    with pytest.raises(ConfigError, match="larger than"):
        load_yaml_file(big)
    with pytest.raises(ConfigError, match="deeper"):
        parse_yaml_text("[" * 200 + "]" * 200)
    with pytest.raises(ConfigError, match="cannot be read"):
        parse_yaml_text("when: 2024-13-45\n")
    (tmp_path / "bin.yaml").write_bytes(b"a: \xff\xfe\n")
    with pytest.raises(ConfigError, match="UTF-8"):
        load_yaml_file(tmp_path / "bin.yaml")


@pytest.mark.parametrize("name", sorted(p.name for p in CONFIGS.glob("*.yaml")))
def test_shipped_configs_load(name: str) -> None:
    assert isinstance(load_yaml_file(CONFIGS / name), dict)


# -- the command line: one line, exit 2, nothing written ----------------------------------------
def _render(*extra: str, out: Path) -> list[str]:
    return ["render", CLIP, "-o", str(out), "--style", STYLE, "--untrained", "--no-progress",
            *extra]  # fmt: skip


@pytest.mark.parametrize(
    ("extra", "words"),
    [
        (["--style", STYLE, "--style-weights", "nan", "nan"], "style_weights: expected a number"),
        (["--style-weights", "inf"], "style_weights: expected a number"),
        (["--style", STYLE, "--style-weights", "-1", "2"], ">= 0"),
        (["--style", STYLE, "--style-weights", "0", "0"], "positive sum"),
        (["--start", "nan"], "start: expected a number"),
        (["--duration", "inf"], "duration: expected a number"),
        (["--alpha", "nan"], "alpha"),
        (["--device", "cuda"] if not torch.cuda.is_available() else ["--device", "tpu"], "device"),
    ],
)
def test_bad_render_values_are_one_line(tmp_path: Path, capsys, extra, words) -> None:
    out = tmp_path / "o.mp4"
    assert main(_render(*extra, out=out)) == 2
    assert words in one_error_line(capsys)
    assert not out.exists()


@pytest.mark.parametrize(
    ("text", "words"),
    [
        (BILLION_LAUGHS, "anchors and aliases"),
        ("style_size: 64\nstyle_size: 128\n", "'style_size' appears more than once"),
        ("style_weights: [.nan]\n", "style_weights: expected a number"),
        ("start: .inf\n", "start: expected a number"),
    ],
)
@pytest.mark.parametrize("command", ["render", "live", "image", "train"])
def test_bad_config_files_are_one_line_everywhere(
    tmp_path: Path, capsys, command: str, text: str, words: str
) -> None:
    if "start" in text and command != "render":
        text, words = "alpha: .nan\n", "alpha"
    if "style_weights" in text and command == "train":
        text, words = "lr: .nan\n", "lr: expected a number"
    config = tmp_path / "c.yaml"
    config.write_text(text)
    argv = {
        "render": _render("--config", str(config), out=tmp_path / "o.mp4"),
        "live": [
            "live",
            "--source",
            CLIP,
            "--style",
            STYLE,
            "--untrained",
            "--config",
            str(config),
        ],
        "image": [
            "image",
            STYLE,
            "--style",
            STYLE,
            "-o",
            str(tmp_path / "o.png"),
            "--untrained",
            "--config",
            str(config),
        ],
        "train": ["train", "--config", str(config), "content_dir=bundled", "style_dir=bundled"],
    }[command]
    assert main(argv) == 2
    assert words in one_error_line(capsys)
    assert config.read_text() == text
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.yaml"]


def test_config_directory_is_one_line(tmp_path: Path, capsys) -> None:
    for argv in (_render("--config", str(tmp_path), out=tmp_path / "o.mp4"),
                 ["train", "--config", str(tmp_path)]):  # fmt: skip
        assert main(argv) == 2
        assert "is a directory" in one_error_line(capsys)


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
@pytest.mark.parametrize(
    "argv",
    [
        ["train", "--config", str(CONFIGS / "train_smoke.yaml"), "device=cuda"],
        ["train", "--config", str(CONFIGS / "train_smoke.yaml"), "--device", "cuda"],
        ["eval", "--synthetic", "pan", "--device", "cuda"],
        ["eval", "--synthetic", "pan", "--untrained", "video", "--device", "cuda:1"],
    ],
)
def test_unavailable_device_for_train_and_eval_is_one_line(argv: list[str], capsys) -> None:
    assert main(argv) == 2
    assert "CUDA is not available" in one_error_line(capsys)


@pytest.mark.slow
@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_subprocess_train_without_cuda_and_billion_laughs(tmp_path: Path) -> None:
    """The real console entry: exit 2, exactly one stderr line, within a few seconds."""
    laughs = tmp_path / "laughs.yaml"
    laughs.write_text(BILLION_LAUGHS)
    for argv in (["train", "--config", str(CONFIGS / "train_smoke.yaml"), "device=cuda"],
                 ["render", "--config", str(laughs), CLIP, "-o", str(tmp_path / "o.mp4")]):  # fmt: skip
        started = time.monotonic()
        result = subprocess.run(
            [sys.executable, "-c", "import sys; from streamer.cli import main; sys.exit(main())",
             *argv],
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert result.returncode == 2, result.stderr
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("stylestream: error: "), lines
        assert time.monotonic() - started < 30
    assert not (tmp_path / "o.mp4").exists()


def test_train_takes_key_value_and_flags_alike(capsys) -> None:
    base = ["train", "--config", str(CONFIGS / "train_smoke.yaml"), "--print-config"]
    assert main([*base, "lr=2e-4", "similarity_taps=[relu3_1, relu4_1]"]) == 0
    as_overrides = capsys.readouterr().out
    assert main([*base, "--lr", "2e-4", "--similarity-taps", "relu3_1", "relu4_1"]) == 0
    assert capsys.readouterr().out == as_overrides
    assert "lr: 0.0002" in as_overrides


@pytest.mark.parametrize(
    ("action", "words"),
    [
        (["set-style", STYLE, STYLE, "--weights", "nan", "1"], "weights: expected a number"),
        (["set-style", STYLE, "--weights", "inf"], "weights: expected a number"),
        (["set-style", STYLE, STYLE, "--weights", "-1", "1"], "finite numbers >= 0"),
        (["set-style", STYLE, STYLE, "--weights", "0", "0"], "positive sum"),
        (["set-alpha", "nan"], "alpha: expected a number"),
        (["set-alpha", "1.5"], "alpha must be in [0, 1]"),
    ],
)
def test_control_refuses_bad_values_before_sending(capsys, action: list[str], words: str) -> None:
    """The shared checks run in `stylestream control` too: no request leaves, no wait."""
    started = time.monotonic()
    assert main(["control", "tcp://127.0.0.1:9", *action, "--timeout-s", "30"]) == 2
    assert words in one_error_line(capsys)
    assert time.monotonic() - started < 5


def test_config_equals_form_and_a_second_config_are_handled(tmp_path: Path, capsys) -> None:
    config = tmp_path / "c.yaml"
    config.write_text("style_size: 8\n")  # invalid: proves the file was read
    assert main([*_render(out=tmp_path / "o.mp4"), f"--config={config}"]) == 2
    assert "style_size" in one_error_line(capsys)
    assert main([*_render(out=tmp_path / "o.mp4"), "--config", str(config), "--config", "x"]) == 2
    assert "given 2 times" in one_error_line(capsys)
