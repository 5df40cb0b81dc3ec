"""``render --ray`` mistakes: an unreachable cluster is one line after ``--ray-timeout-s``; junk
in a job folder is one line naming the file and ``--resume`` trusts only a manifest it
validated (real clips and the real planner, no Ray runtime); a damaged input is one line naming
it, and in a folder it fails alone (a real local Ray runtime, ``ray``-marked tests)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from helpers.cli import main_error
from helpers.media import count_decodable_frames, write_clip, write_contrast_styles

from streamer.cluster.job import Job, JobExistsError, JobMismatchError, read_manifest
from streamer.cluster.plan import plan_video

pytest.importorskip("ray")


@pytest.fixture
def clip(tmp_path: Path) -> Path:
    return Path(write_clip(tmp_path / "in.mp4", frames=8, size=(32, 32), audio=False).path)


def test_an_unreachable_cluster_is_one_line_within_the_timeout(tmp_path, clip, capsys) -> None:
    style = write_contrast_styles(tmp_path)["warm"]
    argv = ["render", str(clip), "-o", str(tmp_path / "o.mp4"), "--style", style, "--untrained",
            "--no-progress", "--ray", "127.0.0.1:1", "--ray-timeout-s", "5"]  # fmt: skip
    began = time.monotonic()
    line = main_error(argv, capsys)
    assert "cannot reach the Ray cluster at '127.0.0.1:1'" in line
    assert time.monotonic() - began < 60
    assert not (tmp_path / "o.mp4").exists()
    for value in ("0", "-1", "nan"):
        assert "ray_timeout_s" in main_error([*argv[:-1], value], capsys)


def _manifest(folder: Path, content: object) -> Path:
    folder.mkdir(exist_ok=True)
    path = folder / "manifest.json"
    path.write_text(json.dumps(content))
    return path


@pytest.mark.parametrize(
    "content",
    [
        [1, 2, 3],
        {"version": 1, "fingerprint": "f", "segments": {"one": {"sha256": "x", "frames": 1}}},
        {"version": 1, "fingerprint": "f", "segments": {"0": {"sha256": 3, "frames": 1}}},
        {"version": 1, "fingerprint": "f", "segments": {"0": {"sha256": "x", "frames": -1}}},
        {"version": 1, "fingerprint": "f", "segments": [1]},
        {"version": "1", "fingerprint": "f", "segments": {}},
    ],
)
def test_a_manifest_that_does_not_validate_is_one_error_naming_it(tmp_path, content) -> None:
    path = _manifest(tmp_path / "job", content)
    with pytest.raises(JobMismatchError, match=r"manifest\.json") as raised:
        read_manifest(path)
    assert "\n" not in str(raised.value)


def test_resume_reads_only_validated_manifests_and_a_file_is_no_job_folder(tmp_path, clip) -> None:
    plan = plan_video(str(clip), 1.0)
    folder = tmp_path / "job"
    _manifest(folder, {"version": 1, "fingerprint": "f", "segments": {"x": {}}})
    with pytest.raises(JobMismatchError, match="segment entry 'x'"):
        Job.open(folder, fingerprint="f", output="o.mp4", plan=plan, resume=True,
                 overwrite=False)  # fmt: skip
    good = {"version": 1, "fingerprint": "f", "segments": {"0": {"sha256": "ab", "frames": 8}}}
    _manifest(folder, good)
    job = Job.open(folder, fingerprint="f", output="o.mp4", plan=plan, resume=True, overwrite=False)
    assert job.done == {0: {"sha256": "ab", "frames": 8}}
    taken = tmp_path / "taken.stylestream-job"
    taken.write_text("not a folder")
    for resume in (False, True):
        with pytest.raises(JobExistsError, match="taken by a file"):
            Job.open(taken, fingerprint="f", output="o.mp4", plan=plan, resume=resume,
                     overwrite=False)  # fmt: skip
    assert taken.read_text() == "not a folder"


# -- damaged inputs on a real local Ray runtime -----------------------------------------------
def _truncated_clip(path: Path) -> Path:
    """A real MP4 (index first: it opens and probes) cut at 60 %: its frames break off."""
    write_clip(path, frames=48, size=(64, 96), audio=False, gop=12,
               container_options={"movflags": "faststart"})  # fmt: skip
    data = path.read_bytes()
    path.write_bytes(data[: len(data) * 6 // 10])
    return path


def _ray_render(source: Path | str, output: str, style: str) -> list[str]:
    return ["render", str(source), "-o", output, "--style", style, "--untrained", "--style-size",
            "32", "--device", "cpu", "--precision", "fp32", "--ray", "--workers", "2",
            "--segment-s", "0.5", "--no-progress"]  # fmt: skip


@pytest.mark.ray
@pytest.mark.slow
def test_a_damaged_input_is_one_line_naming_it(ray_runtime, tmp_path, capsys) -> None:
    bad = _truncated_clip(tmp_path / "bad.mp4")
    style = write_contrast_styles(tmp_path)["warm"]
    line = main_error(_ray_render(bad, str(tmp_path / "o.mp4"), style), capsys)
    assert f"input {bad} " in line and "truncated" in line
    assert "stylestream-seg" not in line and "segment_" not in line  # no worker temp file
    assert not (tmp_path / "o.mp4").exists()
    assert not (tmp_path / "o.mp4.stylestream-job").exists()


@pytest.mark.ray
@pytest.mark.slow
def test_a_damaged_video_in_a_folder_fails_alone(ray_runtime, tmp_path, capsys) -> None:
    from streamer.cli import main

    inputs = tmp_path / "in"
    inputs.mkdir()
    good = {
        name: write_clip(inputs / name, frames=frames, size=(64, 96), audio=False, gop=12)
        for name, frames in (("a.mp4", 30), ("c.mp4", 20))
    }
    _truncated_clip(inputs / "b.mp4")
    (inputs / "d.mp4").write_bytes(b"not a video " * 300)  # garbage with a video name
    outdir = tmp_path / "out"
    outdir.mkdir()
    style = write_contrast_styles(tmp_path)["warm"]
    code = main(_ray_render(inputs, f"{outdir}/", style))
    captured = capsys.readouterr()
    assert code == 2, captured.err
    assert sorted(p.name for p in outdir.iterdir()) == ["a.mp4", "c.mp4"]  # no job folder left
    for name, clip in good.items():
        assert count_decodable_frames(outdir / name) == len(clip.pts)
    lines = [line for line in captured.err.splitlines() if line.strip()]
    assert lines[-3] == "stylestream: error: 2 of 4 input(s) failed:", captured.err
    assert lines[-2].startswith(f"  {inputs / 'b.mp4'}: ") and "truncated" in lines[-2]
    assert lines[-1].startswith(f"  {inputs / 'd.mp4'}: ")
    assert "Traceback" not in captured.err
    assert "-> 2 outputs" in captured.out
