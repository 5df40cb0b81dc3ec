"""Every command's documented defaults are the ones used when a flag is left out, and a YAML
``null`` reaches the config (an absent flag is absent, never ``None``)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from adaattn_video.assets import DEFAULT_CONTENT, style_images
from configkit.convert import defaults_of, from_mapping, iter_keys, to_mapping
from configkit.flags import CONFIG_FILE_KEY
from streamer.cli import command_config, main
from streamer.cli.commands import COMMANDS

STYLE = str(style_images()[0])
# The arguments each command needs (argv words) and the same as mapping keys.
REQUIRED: dict[tuple[str, ...], tuple[list[str], dict[str, object]]] = {
    ("weights", "import"): (["src"], {"src": "src"}),
    ("image",): (["c.png", "--style", STYLE], {"content": "c.png", "style": [STYLE]}),
    ("info",): (["w.safetensors"], {"weights_file": "w.safetensors"}),
    ("render",): (["in.mp4", "-o", "o.mp4", "--style", STYLE],
                  {"input": "in.mp4", "output": "o.mp4", "style": [STYLE]}),
    ("live",): (["--source", "0", "--style", STYLE], {"source": "0", "style": [STYLE]}),
    ("keys", "generate"): (["dir"], {"directory": "dir"}),
    ("control", "set-style"): (["a.jpg"], {"images": ["a.jpg"]}),
    ("control", "set-alpha"): (["0.5"], {"alpha": "0.5"}),
    ("control", "add-stream"): (["n", "src"], {"name": "n", "source": "src"}),
    ("control", "remove-stream"): (["n"], {"name": "n"}),
    ("serve",): (["--style", STYLE, "--stream", "a=lavfi:testsrc2"],
                 {"style": [STYLE], "streams": [{"name": "a", "source": "lavfi:testsrc2"}]}),
    ("export", "onnx"): (["-o", "m.onnx"], {"output": "m.onnx"}),
    ("train",): (["content_dir=bundled", "style_dir=bundled"],
                 {"content_dir": "bundled", "style_dir": "bundled"}),
}  # fmt: skip


def _argv(path: tuple[str, ...], words: list[str]) -> list[str]:
    if path[0] == "control":  # control ENDPOINT ACTION ...
        return ["control", "tcp://127.0.0.1:5556", *path[1:], *words]
    return [*path, *words]


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: " ".join(c.path))
def test_defaults_are_used_when_flags_are_left_out(command) -> None:
    words, required = REQUIRED.get(command.path, ([], {}))
    if command.path[0] == "control":
        required = {**required, "endpoint": "tcp://127.0.0.1:5556"}
    parsed = to_mapping(command_config(_argv(command.path, words)))
    documented_defaults = {**defaults_of(command.config), **command.defaults}  # as --help shows
    for key, field, _ in iter_keys(command.config):
        if key in required or key == CONFIG_FILE_KEY or key not in parsed:
            continue
        documented = documented_defaults[key]
        fmt = field.metadata.get("format")
        if fmt is not None and documented is not None and key not in command.defaults:
            documented = fmt(documented)  # as written in YAML ("640x360")
        explicit = to_mapping(from_mapping(command.config, {**command.defaults, **required,
                                                            key: documented}))  # fmt: skip
        assert parsed[key] == explicit[key], (command.path, key)


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["image", "c.png", "--style", STYLE], {"style_size": None}),  # native size
        (["eval", "--synthetic", "pan"], {"style_size": None}),
        (["live", "--source", "0", "--style", STYLE],
         {"style_size": 512, "control": "tcp://127.0.0.1:5556", "zmq": "tcp://127.0.0.1:5555"}),
        (["render", "in.mp4", "-o", "o.mp4", "--style", STYLE],
         {"style_size": 512, "crf": 18, "preset": "veryfast", "progress": True, "ray": None}),
        (["bench", "live"], {"style_size": 256, "size": "640x360"}),
        (["studio"], {"size": "640x360", "upload_mb": 10.0}),
        (["control", "tcp://127.0.0.1:9", "status"], {"timeout_s": 30.0}),
        (["serve", "--style", STYLE, "--stream", "a=x"], {"send_hwm": 32, "control": "tcp://127.0.0.1:5556"}),
    ],
)  # fmt: skip
def test_documented_defaults(argv: list[str], expected: dict[str, object]) -> None:
    mapping = to_mapping(command_config(argv))
    assert {key: mapping[key] for key in expected} == expected


@pytest.mark.parametrize(
    ("argv", "text", "key"),
    [
        (["image", "c.png", "--style", STYLE, "--style-size", "64"], "style_size: null\n",
         "style_size"),
        (["render", "in.mp4", "-o", "o.mp4", "--style", STYLE], "style_size: null\n",
         "style_size"),
        (["render", "in.mp4", "-o", "o.mp4", "--style", STYLE], "crf: null\npreset: null\n",
         "crf"),
        (["live", "--source", "0", "--style", STYLE, "--record", "o.mp4"], "zmq: null\n", "zmq"),
    ],
)  # fmt: skip
def test_yaml_null_reaches_the_config(tmp_path: Path, argv: list[str], text: str, key: str):
    config = tmp_path / "c.yaml"
    config.write_text(text)
    # the flag (given before) is overridden by the file only when the flag is absent
    flagless = [
        a for i, a in enumerate(argv) if a != "--style-size" and argv[i - 1] != "--style-size"
    ]
    mapping = to_mapping(command_config([*flagless, "--config", str(config)]))
    assert mapping[key] is None
    if "--style-size" in argv:  # a flag still wins over the file
        assert to_mapping(command_config([*argv, "--config", str(config)]))[key] == 64


def test_image_uses_native_size_styles_by_default(tmp_path: Path) -> None:
    style = tmp_path / "style.png"
    Image.open(STYLE).convert("RGB").resize((256, 256)).save(style)
    common = ["image", str(DEFAULT_CONTENT), "--style", str(style), "--untrained",
              "--size", "48", "--device", "cpu", "--precision", "fp32"]  # fmt: skip
    outs = {}
    for name, extra in (("default", []), ("256", ["--style-size", "256"]),
                        ("64", ["--style-size", "64"])):  # fmt: skip
        out = tmp_path / f"{name}.png"
        assert main([*common, *extra, "-o", str(out)]) == 0
        outs[name] = np.asarray(Image.open(out))
    assert np.array_equal(outs["default"], outs["256"])
    assert not np.array_equal(outs["default"], outs["64"])  # the style size matters here
