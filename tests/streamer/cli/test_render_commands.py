"""Offline rendering end to end: render() and the ``render``/``demo``/``bench render`` commands,
with the real (untrained, tiny) model, real files, real signals to a real subprocess."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import time
from fractions import Fraction
from pathlib import Path

import pytest
from helpers.cli import one_error_line
from helpers.media import (
    audio_packets,
    count_decodable_frames,
    decodable_frame_times,
    frame_times,
    has_audio,
    video_size,
    write_clip,
    write_image_folder,
)

from adaattn_video.assets import DEFAULT_STYLE
from adaattn_video.settings import StylizerSpec
from streamer.cli import main
from streamer.render import RenderConfig, render
from streamer.sources import InputDamagedError, open_source

STYLE = str(DEFAULT_STYLE)


def config(input_path, output, **overrides) -> RenderConfig:
    spec = StylizerSpec(styles=(STYLE,))
    return RenderConfig(input=str(input_path), output=str(output), stylizer=spec, **overrides)


def cli(*args: str) -> list[str]:
    return [*args, "--style", STYLE, "--untrained", "--style-size", "32", "--no-progress"]


# -- render() with the shared tiny model ---------------------------------------------------
def test_render_keeps_every_frame_its_time_and_the_audio(
    clip_with_audio, tmp_path, untrained_stylizer
):
    out = tmp_path / "out.mp4"
    result = render(config(clip_with_audio.path, out), stylizer=untrained_stylizer, progress=False)
    assert result.stats.frames_out == 24 and result.stats.completed
    assert result.audio_streams == 1 and result.interrupted_by is None
    assert frame_times(out) == clip_with_audio.times
    assert audio_packets(out) == audio_packets(clip_with_audio.path)
    assert video_size(out) == (64, 64)
    assert "rendered 24 frames" in result.summary()


def test_render_variable_frame_rate(tmp_path, untrained_stylizer):
    info = write_clip(tmp_path / "vfr.mp4", frames=12, vfr=True)
    out = tmp_path / "out.mp4"
    render(config(info.path, out), stylizer=untrained_stylizer, progress=False)
    assert frame_times(out) == info.times
    assert audio_packets(out) == audio_packets(info.path)


@pytest.mark.parametrize("size", [(24, 1), (1, 24)])
def test_render_a_one_pixel_wide_or_high_video(tmp_path, untrained_stylizer, size):
    info = write_clip(tmp_path / "thin.mp4", frames=4, size=size, audio=False)
    out = tmp_path / "out.mp4"
    result = render(config(info.path, out), stylizer=untrained_stylizer, progress=False)
    height, width = size
    assert result.stats.frames_out == 4
    assert result.padded_size == (height + height % 2, width + width % 2)
    assert video_size(out) == (width + width % 2, height + height % 2)
    assert frame_times(out) == info.times


def test_render_odd_size_and_no_audio(tmp_path, untrained_stylizer):
    info = write_clip(tmp_path / "odd.mp4", frames=6, size=(37, 51), audio=False)
    out = tmp_path / "out.mp4"
    result = render(config(info.path, out), stylizer=untrained_stylizer, progress=False)
    assert result.padded_size == (38, 52) and "padded to 52x38" in result.summary()
    assert video_size(out) == (52, 38)
    assert frame_times(out) == info.times and not has_audio(out)


def test_render_a_part(tmp_path, untrained_stylizer):
    info = write_clip(tmp_path / "clip.mp4", frames=48, fps=24)
    out = tmp_path / "part.mp4"
    render(
        config(info.path, out, start_s=1.0, duration_s=0.5),
        stylizer=untrained_stylizer,
        progress=False,
    )
    assert frame_times(out) == [Fraction(i, 24) for i in range(12)]
    copied = audio_packets(out)
    source = {payload for _, payload in audio_packets(info.path)}
    assert copied and all(payload in source for _, payload in copied)
    assert abs(len(copied) - 0.5 * 48000 / 1024) <= 1  # 0.5 s of 1024-sample AAC frames


def test_image_folder_in_png_folder_out(tmp_path, untrained_stylizer):
    write_image_folder(tmp_path / "in", frames=5, size=(32, 40))
    result = render(
        config(tmp_path / "in", tmp_path / "out/"), stylizer=untrained_stylizer, progress=False
    )
    names = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert result.stats.frames_out == 5 and names == [f"{i:06d}.png" for i in range(5)]
    with open_source(str(tmp_path / "out")) as source:
        assert {f.image.shape for f in source} == {(32, 40, 3)}


def test_start_past_the_end_is_one_error_line_and_writes_nothing(tmp_path, capsys):
    info = write_clip(tmp_path / "clip.mp4", frames=48, fps=24)  # 2.0 s
    out = tmp_path / "out.mp4"
    assert main(["render", *cli(str(info.path), "-o", str(out), "--start", "60")]) == 2
    line = one_error_line(capsys)
    assert "ends at 2.0 s" in line and "--start 60" in line
    assert not out.exists()


@pytest.mark.parametrize("suffix", [".mkv", ".ts"])
def test_truncated_mkv_and_ts_render_the_frames_before_the_cut_then_exit_2(
    tmp_path, capsys, suffix
):
    info = write_clip(tmp_path / f"clip{suffix}", frames=48, audio=False)
    data = info.path.read_bytes()
    damaged = tmp_path / f"damaged{suffix}"
    damaged.write_bytes(data[: len(data) * 6 // 10 + 5])
    out = tmp_path / "out.mp4"
    assert main(["render", *cli(str(damaged), "-o", str(out))]) == 2
    assert "truncated" in one_error_line(capsys)
    assert 10 < count_decodable_frames(out) < 48


def test_truncated_input_renders_what_came_before_the_damage(tmp_path, untrained_stylizer):
    info = write_clip(tmp_path / "clip.mp4", frames=48, container_options={"movflags": "faststart"})
    data = info.path.read_bytes()
    damaged = tmp_path / "damaged.mp4"
    damaged.write_bytes(data[: len(data) // 2])
    out = tmp_path / "out.mp4"
    with pytest.raises(InputDamagedError, match=r"frame\(s\) rendered before it are in") as error:
        render(config(damaged, out), stylizer=untrained_stylizer, progress=False)
    rendered = error.value.frames_read
    assert rendered > 5
    # what the decoder could make of the damaged file (a B-frame whose data is cut off is
    # skipped, so this need not be a prefix of the clip)
    readable = []
    with pytest.raises(InputDamagedError), open_source(str(damaged)) as source:
        readable.extend(f.pts * f.time_base for f in source)
    # the output is finalized and plays: exactly those frames, at their times
    assert frame_times(out) == readable and len(readable) == rendered
    assert set(readable) <= set(info.times)


# -- the command line in-process -----------------------------------------------------------
def test_missing_input(tmp_path, capsys):
    assert main(["render", *cli(str(tmp_path / "nope.mp4"), "-o", str(tmp_path / "o.mp4"))]) == 2
    assert "does not exist" in one_error_line(capsys)


def test_unwritable_output(clip_with_audio, tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    out = blocker / "o.mp4"  # a "folder" that is a file
    assert main(["render", *cli(str(clip_with_audio.path), "-o", str(out))]) == 2
    assert "does not exist" in one_error_line(capsys)
    assert main(["render", *cli(str(clip_with_audio.path), "-o", "/proc/stylestream.mp4")]) == 2
    assert "/proc/stylestream.mp4" in one_error_line(capsys)


def test_unknown_codec(clip_with_audio, tmp_path, capsys):
    args = cli(str(clip_with_audio.path), "-o", str(tmp_path / "o.mp4"), "--codec", "h266turbo")
    assert main(["render", *args]) == 2
    assert "unknown video encoder 'h266turbo'" in one_error_line(capsys)
    assert not (tmp_path / "o.mp4").exists()


def test_existing_output_is_kept(clip_with_audio, tmp_path, capsys):
    out = tmp_path / "o.mp4"
    out.write_bytes(b"keep me")
    assert main(["render", *cli(str(clip_with_audio.path), "-o", str(out))]) == 2
    assert "--overwrite" in one_error_line(capsys) and out.read_bytes() == b"keep me"


@pytest.mark.parametrize(
    ("yaml_text", "message"),
    [
        ("crf: [1, 2]\n", "crf: expected a number"),
        ("batch_size: 1.5\n", "batch_size: expected an integer"),
        ("batch_size: -1\n", "batch_size must be >= 0"),
        ("size: big\n", "expected WxH"),
        ("speed: 11\n", "unknown key 'speed'"),
        ("alpha: 3\n", "alpha must be in [0, 1]"),
        ("style_weights: [1, 2, 3]\n", "expected 1 style weights"),
    ],
)
def test_bad_config_values(clip_with_audio, tmp_path, capsys, yaml_text, message):
    path = tmp_path / "bad.yaml"
    path.write_text(yaml_text)
    args = cli(str(clip_with_audio.path), "-o", str(tmp_path / "o.mp4"), "--config", str(path))
    assert main(["render", *args]) == 2
    assert message in one_error_line(capsys)


def test_bad_flag_value_is_one_line_too(clip_with_audio, tmp_path, capsys):
    args = cli(str(clip_with_audio.path), "-o", str(tmp_path / "o.mp4"), "--crf", "best")
    assert main(["render", *args]) == 2
    assert "crf: expected a number or null, got 'best'" in one_error_line(capsys)


def test_config_file_with_flags_overriding(tmp_path, capsys):
    yaml_path = tmp_path / "render.yaml"
    yaml_path.write_text(
        "input: lavfi:testsrc2=size=48x32:rate=10\n"
        f"style: [{STYLE}, {STYLE}]\nstyle_weights: [0.7, 0.3]\n"
        "untrained: true\nstyle_size: 32\nduration: 0.8\nprogress: false\nsize: 64x48\n"
    )
    out = tmp_path / "o.mp4"
    assert main(["render", "--config", str(yaml_path), "-o", str(out), "--duration", "0.5"]) == 0
    assert len(frame_times(out)) == 5  # the flag's 0.5 s at 10 fps, not the file's 0.8 s
    assert video_size(out) == (64, 48)  # --size from the file
    assert "rendered 5 frames" in capsys.readouterr().out


def test_the_example_config_parses(tmp_path):
    """configs/render.yaml: every key it sets is known and valid (render of a lavfi clip)."""
    example = Path(__file__).resolve().parents[3] / "configs" / "render.yaml"
    out = tmp_path / "o.mp4"
    args = ["render", "--config", str(example), "lavfi:testsrc2=size=32x32:rate=10",
            "-o", str(out), "--untrained", "--duration", "0.2", "--no-progress", "--style", STYLE]  # fmt: skip
    assert main(args) == 0 and len(frame_times(out)) == 2


def test_demo_runs_offline_without_weights(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("STYLESTREAM_CACHE", str(tmp_path / "empty-cache"))
    args = ["demo", "--output-dir", str(tmp_path), "--size", "64x36", "--seconds", "0.5",
            "--device", "cpu", "--no-progress"]  # fmt: skip
    assert main(args) == 0
    captured = capsys.readouterr()
    assert "NOT a stylization" in captured.out and "stylestream weights" in captured.out
    clip, out = tmp_path / "stylestream-demo-input.mp4", tmp_path / "stylestream-demo.mp4"
    assert frame_times(out) == frame_times(clip) and len(frame_times(out)) == 12
    assert audio_packets(out) == audio_packets(clip) != []
    assert main(args) == 0  # a second run replaces its own files


@pytest.mark.slow
def test_bench_render_prints_numbers(capsys):
    args = [
        "bench",
        "render",
        "--size",
        "64x64",
        "--frames",
        "4",
        "--repeat",
        "2",
        "--device",
        "cpu",
    ]
    assert main(args) == 0
    out = capsys.readouterr().out
    for label in (
        "stage by stage",
        "pipelined",
        "model only",
        "overlap efficiency",
        "model busy in (b)",
    ):
        assert re.search(rf"{re.escape(label)}\s*:\s*\d+\.\d+", out), out


# -- signals to a real render process ------------------------------------------------------
def start_render(out: Path) -> subprocess.Popen:
    """A render slow enough to interrupt: 2 minutes of lavfi input."""
    code = "import sys; from streamer.cli import main; sys.exit(main())"
    args = cli("lavfi:testsrc2=size=64x64:rate=10:duration=120", "-o", str(out))
    return subprocess.Popen(
        [sys.executable, "-c", code, "render", *args, "--fragment-s", "0.5"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def wait_for_frames(out: Path, proc: subprocess.Popen, frames: int, timeout_s: float = 90) -> int:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"render ended early ({proc.returncode}): {proc.communicate()}")
        if out.exists() and (seen := count_decodable_frames(out)) >= frames:
            return seen
        time.sleep(0.3)
    proc.kill()
    pytest.fail(f"no {frames} frames in {out} after {timeout_s} s")


@pytest.mark.slow
def test_ctrl_c_finalizes_the_file_with_every_frame_so_far(tmp_path):
    out = tmp_path / "out.mp4"
    proc = start_render(out)
    try:
        seen = wait_for_frames(out, proc, 10)
        proc.send_signal(signal.SIGINT)
        stdout, stderr = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 130, stderr
    rendered = int(re.search(r"rendered (\d+) frames", stdout).group(1))
    times = frame_times(out)  # decodes to the end without an error: finalized
    assert len(times) == rendered >= seen
    assert times == [Fraction(i, 10) for i in range(rendered)]
    assert "interrupted" in stdout and "SIGINT" in stderr


@pytest.mark.slow
def test_sigkill_leaves_a_playable_file(tmp_path):
    out = tmp_path / "out.mp4"
    proc = start_render(out)
    try:
        seen = wait_for_frames(out, proc, 10)
        proc.kill()  # SIGKILL: no handler, no flush, no finalize
        proc.communicate(timeout=30)
    finally:
        proc.kill()
    times = decodable_frame_times(out)
    # complete fragments (0.5 s = 5 frames) decode exactly; inside the torn last one, B-frames
    # whose data is cut off are skipped, but no frame shows at a wrong time
    assert len(times) >= seen
    assert times[:5] == [Fraction(i, 10) for i in range(5)]
    assert set(times) <= {Fraction(i, 10) for i in range(1200)} and times == sorted(set(times))


@pytest.mark.slow
@pytest.mark.parametrize("delay_s", [0.3, 0.7, 1.2, 1.8, 2.5, 3.5, 5.0])
def test_ctrl_c_at_any_moment_of_start_up_exits_130_at_once_leaving_nothing_half_written(
    tmp_path, delay_s
):
    """SIGINT during the imports, the model load, the style encode or the first frames: exit
    130 promptly with no traceback; the output is either absent or complete and playable."""
    out = tmp_path / "out.mp4"
    proc = start_render(out)
    try:
        time.sleep(delay_s)
        proc.send_signal(signal.SIGINT)
        sent = time.monotonic()
        stdout, stderr = proc.communicate(timeout=60)
        took = time.monotonic() - sent
    finally:
        proc.kill()
    assert proc.returncode == 130, (stdout, stderr)
    assert "Traceback" not in stderr, stderr
    assert took < 15, took  # not the whole 2-minute render
    assert "interrupted" in stderr
    if out.exists():  # interrupted while frames flowed: finalized, every frame decodable
        times = frame_times(out)
        assert times == [Fraction(i, 10) for i in range(len(times))]


@pytest.mark.slow
def test_a_second_ctrl_c_while_finishing_is_quiet(tmp_path):
    out = tmp_path / "out.mp4"
    proc = start_render(out)
    try:
        wait_for_frames(out, proc, 5)
        proc.send_signal(signal.SIGINT)
        time.sleep(0.05)
        proc.send_signal(signal.SIGINT)
        time.sleep(0.05)
        proc.send_signal(signal.SIGINT)
        _stdout, stderr = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 130, stderr
    assert "Traceback" not in stderr, stderr
    frame_times(out)  # still a finished, decodable file
