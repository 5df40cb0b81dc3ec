"""The output guard: no command writes over one of its inputs (same path, symlink, hard link,
input frames), an existing output is replaced only with --overwrite, and a replaced output
survives a run that fails before its first output is on disk. Every refusal is one error line,
exit 2, fast, with every input byte-identical afterwards."""

from __future__ import annotations

import hashlib
import os
import time
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
from helpers.media import count_decodable_frames, pattern_frame, write_clip, write_image_folder

from adaattn_video.assets import DEFAULT_STYLE
from streamer.cli import main
from streamer.frames import Frame
from streamer.guard import OutputOverlapError, guard_output, input_paths, refuse_overlap
from streamer.sinks.images import ImageSequenceSink, ImageSequenceSinkConfig
from streamer.sinks.mp4 import Mp4Sink, Mp4SinkConfig

STYLE = str(DEFAULT_STYLE)
FAST_S = 5.0  # a refusal happens before any model loads: well under this on a busy machine


def digests(*roots: Path) -> dict[str, str]:
    """sha256 of every file under ``roots`` (files or folders), by path."""
    out = {}
    for root in roots:
        files = [root] if root.is_file() else sorted(p for p in root.rglob("*") if p.is_file())
        for path in files:
            out[str(path)] = hashlib.sha256(path.read_bytes()).hexdigest()
    return out


def refused(capsys, argv: list[str], *, match: str) -> None:
    """Run the CLI in-process: exit 2, exactly one ``stylestream: error:`` line, quickly."""
    start = time.perf_counter()
    code = main(argv)
    elapsed = time.perf_counter() - start
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith("stylestream: error:")]
    assert code == 2, err
    assert len(lines) == 1, err
    assert match in lines[0], lines[0]
    assert elapsed < FAST_S, f"refusal took {elapsed:.1f} s"


def render_args(*args: str) -> list[str]:
    return [
        "render", *args, "--style", STYLE, "--untrained", "--style-size", "32",
        "--device", "cpu", "--no-progress",
    ]  # fmt: skip


@pytest.fixture
def clip(tmp_path) -> Path:
    return write_clip(tmp_path / "in.mp4", frames=6, audio=False).path


# -- render ------------------------------------------------------------------------------------
@pytest.mark.parametrize("link", ["same", "symlink", "hardlink", "relative"])
def test_render_never_overwrites_its_input(clip, tmp_path, capsys, monkeypatch, link):
    target = {"same": clip, "symlink": tmp_path / "link.mp4", "hardlink": tmp_path / "hard.mp4"}
    if link == "symlink":
        target[link].symlink_to(clip)
    elif link == "hardlink":
        os.link(clip, target[link])
    elif link == "relative":
        monkeypatch.chdir(tmp_path)
        target[link] = Path("sub/../in.mp4")
        (tmp_path / "sub").mkdir()
    before = digests(tmp_path)
    refused(
        capsys,
        render_args(str(clip), "--overwrite", "-o", str(target[link])),
        match="would overwrite the input",
    )
    assert digests(tmp_path) == before


def test_render_never_overwrites_its_style_or_config(clip, tmp_path, capsys):
    style = tmp_path / "style.mp4"  # a style named like a video, to reach the overlap check
    style.write_bytes(Path(STYLE).read_bytes())
    config = tmp_path / "render.mp4"
    config.write_text(f"style: {STYLE}\n")
    before = digests(tmp_path)
    argv = [
        "render", str(clip), "--style", str(style), "--untrained", "--no-progress",
        "--overwrite", "-o", str(style),
    ]  # fmt: skip
    refused(capsys, argv, match=f"would overwrite the input {style}")
    refused(
        capsys,
        ["render", "--config", str(config), str(clip), "--untrained", "--overwrite", "-o",
         str(config)],
        match=f"would overwrite the input {config}",
    )  # fmt: skip
    assert digests(tmp_path) == before


def test_render_png_output_never_writes_over_input_frames(tmp_path, capsys):
    frames = tmp_path / "frames"
    write_image_folder(frames, frames=3, name="{:06d}.png")
    other = tmp_path / "other"
    other.mkdir()
    os.link(frames / "000001.png", other / "000001.png")  # an output name linked to an input
    before = digests(tmp_path)
    for target in (frames, f"{frames}/", f"{frames}/%06d.png"):  # the folder, its own frames
        refused(
            capsys,
            render_args(str(frames), "--fps", "25", "--overwrite", "-o", str(target)),
            match="input",
        )
    refused(
        capsys,
        render_args(str(frames), "--fps", "25", "--overwrite", "-o", str(other)),
        match="same file",
    )
    # a pattern or glob input: writing frames over them or into their folder is refused too
    refused(
        capsys,
        render_args(f"{frames}/%06d.png", "--overwrite", "-o", f"{frames}/%06d.png"),
        match="would overwrite the input",
    )
    refused(
        capsys,
        render_args(f"{frames}/*.png", "--overwrite", "-o", f"{frames}/out_%03d.png"),
        match="writes into the input folder",
    )
    assert digests(tmp_path) == before


def test_failed_overwrite_keeps_the_old_output(clip, tmp_path, capsys):
    """--overwrite and a run that fails before its first fragment: the old file stays, no
    temporary file is left behind."""
    out = tmp_path / "out.mp4"
    out.write_bytes(b"the previous render")
    refused(
        capsys,
        render_args(str(clip), "--overwrite", "--preset", "bogus", "-o", str(out)),
        match="bogus",
    )
    assert out.read_bytes() == b"the previous render"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.mp4", "out.mp4"]


def test_overwrite_succeeds_and_replaces(clip, tmp_path, capsys):
    out = tmp_path / "out.mp4"
    out.write_bytes(b"the previous render")
    assert main(render_args(str(clip), "--overwrite", "-o", str(out))) == 0
    assert count_decodable_frames(out) == 6
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.mp4", "out.mp4"]


# -- the MP4 sink: temporary name, renamed at the first fragment -------------------------------
def test_mp4_replaces_the_old_file_only_once_its_first_fragment_is_on_disk(tmp_path):
    out = tmp_path / "out.mp4"
    out.write_bytes(b"old")
    sink = Mp4Sink(Mp4SinkConfig(out, overwrite=True, fragment_s=0.25, frame_rate=24))
    frames = [
        Frame(i, pattern_frame(i, 64, 64), pts=i, time_base=Fraction(1, 24)) for i in range(48)
    ]
    written = 0
    while out.read_bytes() == b"old":
        assert written < len(frames), "the first fragment never reached the disk"
        sink.write(frames[written])
        written += 1
    assert not sink.temp_path.exists()  # renamed, and the muxer writes on into it
    # what a kill now leaves under the final name plays (up to the last complete fragment)
    assert count_decodable_frames(out) >= 1
    for frame in frames[written:]:
        sink.write(frame)
    sink.close()
    assert count_decodable_frames(out) == 48


def test_mp4_without_frames_leaves_the_old_file(tmp_path):
    out = tmp_path / "out.mp4"
    out.write_bytes(b"old")
    Mp4Sink(Mp4SinkConfig(out, overwrite=True)).close()
    assert out.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["out.mp4"]


def test_png_overwrite_deletes_old_frames_only_after_the_first_new_one(tmp_path):
    folder = tmp_path / "out"
    write_image_folder(folder, frames=4, name="{:06d}.png")
    before = digests(folder)
    sink = ImageSequenceSink(ImageSequenceSinkConfig(folder, overwrite=True))
    assert digests(folder) == before  # nothing lost yet
    sink.write(Frame(2, np.zeros((16, 16, 3), np.uint8)))
    sink.close()
    assert sorted(p.name for p in folder.iterdir()) == ["000002.png"]


# -- image -------------------------------------------------------------------------------------
def image_args(content: Path, out: Path, *extra: str) -> list[str]:
    return [
        "image", str(content), "--style", STYLE, "--untrained", "--device", "cpu",
        "--size", "32", "--style-size", "32", "-o", str(out), *extra,
    ]  # fmt: skip


def test_image_existing_output_needs_overwrite(tmp_path, capsys):
    content = tmp_path / "content.png"
    content.write_bytes(Path(STYLE).read_bytes())
    out = tmp_path / "out.png"
    out.write_bytes(b"previous picture")
    refused(capsys, image_args(content, out), match="--overwrite")
    assert out.read_bytes() == b"previous picture"
    assert main(image_args(content, out, "--overwrite")) == 0
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["content.png", "out.png"]


def test_image_never_overwrites_content_or_style(tmp_path, capsys):
    content = tmp_path / "content.png"
    content.write_bytes(Path(STYLE).read_bytes())
    style = tmp_path / "style.png"
    style.write_bytes(Path(STYLE).read_bytes())
    (tmp_path / "link.png").symlink_to(content)
    before = digests(tmp_path)
    for target in (content, tmp_path / "link.png"):
        refused(capsys, image_args(content, target, "--overwrite"), match="input")
    argv = [*image_args(content, style, "--overwrite"), "--style", str(style)]
    refused(capsys, argv, match=f"would overwrite the input {style}")
    assert digests(tmp_path) == before


def test_image_failing_after_the_check_keeps_the_old_output(tmp_path, capsys):
    content = tmp_path / "content.png"
    content.write_bytes(Path(STYLE).read_bytes())
    bad_style = tmp_path / "bad.png"
    bad_style.write_bytes(b"not an image")
    out = tmp_path / "out.png"
    out.write_bytes(b"previous picture")
    argv = [
        "image", str(content), "--style", str(bad_style), "--untrained", "--device", "cpu",
        "-o", str(out), "--overwrite",
    ]  # fmt: skip
    assert main(argv) == 2
    assert out.read_bytes() == b"previous picture"
    assert not list(tmp_path.glob(".*partial*"))


# -- live / weights / keys ---------------------------------------------------------------------
def test_live_record_never_overwrites_its_source(clip, tmp_path, capsys):
    (tmp_path / "hard.mp4").unlink(missing_ok=True)
    os.link(clip, tmp_path / "hard.mp4")
    before = digests(tmp_path)
    for record in (clip, tmp_path / "hard.mp4"):
        argv = [
            "live", "--source", str(clip), "--style", STYLE, "--untrained", "--device", "cpu",
            "--zmq", "none", "--control", "none", "--record", str(record), "--overwrite",
        ]  # fmt: skip
        refused(capsys, argv, match="would overwrite the input")
    assert digests(tmp_path) == before


def test_weights_import_output_is_guarded(tmp_path, capsys):
    src = tmp_path / "pkg"
    src.mkdir()
    (src / "old.safetensors").write_bytes(b"an earlier export")
    existing = tmp_path / "model.safetensors"
    existing.write_bytes(b"mine")
    before = digests(tmp_path)
    refused(capsys, ["weights", "import", str(src), "-o", str(existing)], match="--overwrite")
    refused(
        capsys,
        ["weights", "import", str(src), "-o", str(src / "old.safetensors"), "--overwrite"],
        match="input",
    )
    assert digests(tmp_path) == before


# -- the functions -----------------------------------------------------------------------------
def test_streams_and_missing_names_are_no_inputs(tmp_path):
    assert input_paths("lavfi:testsrc2") == []
    assert input_paths("rtsp://host/x") == []
    assert input_paths("0") == []
    assert input_paths(tmp_path / "missing.mp4") == []
    assert input_paths(None) == []
    refuse_overlap(tmp_path / "out.mp4", ["lavfi:testsrc2", tmp_path / "missing.mp4"])


def test_guard_output_against_itself_never_passes(tmp_path):
    path = tmp_path / "a.mp4"
    path.write_bytes(b"x")
    with pytest.raises(OutputOverlapError):
        guard_output(path, inputs=[path], overwrite=True)
    assert guard_output(tmp_path / "b.mp4", inputs=[path], overwrite=False) == tmp_path / "b.mp4"
