"""``--output-option KEY=VALUE`` (and YAML ``output_option:``): checked when the config is built,
applied to every H.264 output; without it the documented defaults hold."""

from __future__ import annotations

import re
from fractions import Fraction
from pathlib import Path

import pytest
from helpers.cli import main_error

from adaattn_video.assets import style_images
from streamer.cli import command_config
from streamer.frames import SourceInfo
from streamer.outputs import EncoderSettings, OutputSet
from streamer.outputs.encoder_options import (
    OutputOptionError,
    encoder_settings,
    parse_output_options,
)

STYLE = str(style_images()[0])
BASE = ["live", "--source", "lavfi:testsrc2=size=64x48:rate=15", "--style", STYLE, "--untrained"]


def test_without_the_flag_the_documented_defaults_hold() -> None:
    assert command_config(BASE).live.output_options == ()
    options = encoder_settings(()).codec_options(Fraction(30))
    assert options["preset"] == "veryfast" and options["tune"] == "zerolatency"
    assert options["b"] == options["maxrate"] == "2500000" and options["bufsize"] == "1250000"
    assert options["g"] == options["keyint_min"] == "30" and options["bf"] == "0"
    assert "crf" not in options


def test_flags_reach_the_encoder_of_every_h264_output(tmp_path: Path) -> None:
    argv = [*BASE, "--output-option", "preset=fast", "--output-option", "bitrate=6M",
            "--output-option", "gop=2", "--output-option", "tune=none"]  # fmt: skip
    config = command_config(argv).live
    assert config.output_options == ("preset=fast", "bitrate=6M", "gop=2", "tune=none")
    settings = encoder_settings(config.output_options)
    outputs = OutputSet.from_urls(
        [f"hls:{tmp_path / 'a'}", f"hls:{tmp_path / 'b'}"],
        info=SourceInfo(frame_rate=Fraction(15)),
        encoder=settings,
    )
    for output in outputs.outputs:
        options = output.encoder.codec_options(Fraction(15))
        assert options["preset"] == "fast" and "tune" not in options
        assert options["b"] == "6000000" and options["g"] == "30"
    outputs.close()


def test_constant_quality_and_yaml_mapping(tmp_path: Path) -> None:
    config = tmp_path / "live.yaml"
    config.write_text(
        f"source: lavfi:testsrc2\nstyle: {STYLE}\noutput_option: {{crf: 20, bitrate: 0}}\n"
    )
    options = command_config(["live", "--config", str(config), "--untrained"]).live.output_options
    assert options == ("crf=20", "bitrate=0")
    codec = encoder_settings(options).codec_options(Fraction(30))
    assert codec["crf"] == "20" and "b" not in codec
    assert encoder_settings(["crf=1", "crf=2"]).crf == 2  # the last wins
    assert encoder_settings(["codec=libx264"]) == EncoderSettings()


@pytest.mark.parametrize(
    ("option", "message"),
    [
        ("foo=1", "unknown key 'foo'; expected one of codec, preset"),
        ("bitrate=fast", "bitrate=fast: not a number"),
        ("preset=quick", "expected one of ultrafast"),
        ("gop=0", "expected seconds in (0, 60]"),
        ("crf=99", "expected 0-51"),
        ("codec=nope", "unknown video encoder 'nope'"),
        ("preset", "expected KEY=VALUE"),
    ],
)
def test_a_bad_option_is_one_line(
    capsys: pytest.CaptureFixture[str], option: str, message: str
) -> None:
    line = main_error([*BASE, "--output-option", option], capsys)
    assert message in line
    with pytest.raises(OutputOptionError, match=re.escape(message)):
        parse_output_options(option)
