"""Every command declares every path it reads and writes (``option(..., role=...)``), so the one
guard (:func:`streamer.guard.guard_declared`) sees them all: the command table is walked, and a
few commands are run onto their own inputs (one line, exit 2, the input's bytes unchanged)."""

from __future__ import annotations

import dataclasses
import re
import typing
from pathlib import Path

import pytest
from helpers.cli import main_error
from helpers.media import write_clip, write_contrast_styles

from configkit.convert import ROLES
from streamer.cli.commands import COMMANDS

PATH_LIKE = re.compile(
    r"output|record|json|weights|style|config|mask|cert|key|dir|src|source|input|content|clip"
    r"|checkpoint|image|region|file|path|hls"
)


def _is_text(hint: object) -> bool:
    """``str``, ``str | None``, ``tuple[str, ...]`` and other text-holding types (not numbers,
    flags or choices)."""
    if hint is str:
        return True
    args = [a for a in typing.get_args(hint) if a is not type(None) and a is not Ellipsis]
    origin = typing.get_origin(hint)
    if origin is typing.Literal:
        return False
    return bool(args) and any(a is str or _is_text(a) or a is typing.Any for a in args)


def _fields(config: type, prefix: str = ""):
    """(dotted name, field, owner class) of ``config`` and of the configs it flattens / nests."""
    hints = typing.get_type_hints(config)
    for field in dataclasses.fields(config):
        hint = hints[field.name]
        if dataclasses.is_dataclass(hint):
            yield from _fields(hint, f"{prefix}{field.name}.")
            continue
        for inner in typing.get_args(hint):  # a list of configs: serve's streams
            if dataclasses.is_dataclass(inner) and field.metadata.get("role") != "declared":
                yield from _fields(inner, f"{prefix}{field.name}[].")
        yield f"{prefix}{field.name}", field, hint, config


def test_every_path_like_field_of_every_command_declares_its_role() -> None:
    missing = []
    for command in COMMANDS:
        for name, field, hint, owner in _fields(command.config):
            if not PATH_LIKE.search(field.name) or not _is_text(hint):
                continue
            role = field.metadata.get("role")
            where = f"{' '.join(command.path)}: {name} ({owner.__name__})"
            if role not in ROLES:
                missing.append(where)
            elif role == "declared" and not callable(getattr(owner, "io_paths", None)):
                missing.append(f"{where}: role 'declared' but {owner.__name__} has no io_paths()")
        names = {name for name, *_ in _fields(command.config)}
        if command.config_file and "config_file" not in names:
            missing.append(f"{' '.join(command.path)}: takes --config but declares no config_file")
    assert missing == [], "add role= (input, output, declared or none):\n" + "\n".join(missing)


def test_option_refuses_an_unknown_role() -> None:
    from configkit.convert import option

    with pytest.raises(ValueError, match="role must be one of"):
        option(None, role="reads")


# -- refusals: one line, exit 2, the input unchanged --------------------------------------------
@pytest.fixture
def clip(tmp_path: Path) -> Path:
    return Path(write_clip(tmp_path / "in.mp4", frames=4, size=(32, 32), audio=False).path)


def test_live_record_onto_its_source(tmp_path, clip, capsys) -> None:
    before = clip.read_bytes()
    style = write_contrast_styles(tmp_path)["warm"]
    argv = ["live", "--source", str(clip), "--record", str(clip), "--overwrite", "--untrained",
            "--style", style, "--zmq", "none", "--control", "none"]  # fmt: skip
    line = main_error(argv, capsys)
    assert "would overwrite the input" in line and str(clip) in line
    assert clip.read_bytes() == before


def test_serve_stream_record_onto_a_style_image(tmp_path, clip, capsys) -> None:
    style = Path(write_contrast_styles(tmp_path)["warm"])
    before = style.read_bytes()
    config = tmp_path / "serve.yaml"
    config.write_text(
        f"untrained: true\nzmq: none\nstreams:\n  - name: a\n    source: {clip}\n"
        f"    style: [{style}]\n    record: {style}\n"
    )
    line = main_error(["serve", "--config", str(config)], capsys)
    assert "would overwrite the input" in line and str(style) in line
    assert style.read_bytes() == before


def test_eval_json_onto_the_clip(tmp_path, clip, capsys) -> None:
    before = clip.read_bytes()
    line = main_error(["eval", str(clip), "--untrained", "video", "--json", str(clip)], capsys)
    assert "would overwrite the input" in line and str(clip) in line
    assert clip.read_bytes() == before


@pytest.mark.parametrize(
    ("bench", "flag"),
    [("serve", "--weights"), ("studio", "--weights"), ("render", "--weights"),
     ("fidelity", "--video-weights")],
)  # fmt: skip
def test_bench_json_onto_its_weights(tmp_path, capsys, bench, flag) -> None:
    weights = tmp_path / "W.safetensors"
    weights.write_bytes(b"weights")
    line = main_error(["bench", bench, flag, str(weights), "--json", str(weights)], capsys)
    assert "would overwrite the input" in line
    assert weights.read_bytes() == b"weights"


def test_train_output_dir_onto_its_photos(tmp_path, capsys) -> None:
    photos = tmp_path / "photos"
    photos.mkdir()
    (photos / "a.png").write_bytes(b"png")
    argv = ["train", "--content-dir", str(photos), "--style-dir", "bundled", "--output-dir",
            str(photos)]  # fmt: skip
    line = main_error(argv, capsys)
    assert str(photos) in line and "input" in line
    assert sorted(p.name for p in photos.iterdir()) == ["a.png"]


def test_view_record_onto_its_config_and_studio_run_dir_onto_a_key(tmp_path, capsys) -> None:
    config = tmp_path / "view.yaml"
    config.write_text(f"record: {config}\n")
    line = main_error(["view", "--config", str(config), "--http", "none"], capsys)
    assert "would overwrite the input" in line
    assert config.read_text() == f"record: {config}\n"
