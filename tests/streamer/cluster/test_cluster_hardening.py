"""``render --ray`` mistakes that never reach Ray: an unreachable cluster is one line after
``--ray-timeout-s``; junk in a job folder is one line naming the file and ``--resume`` trusts
only a manifest it validated. Real clips and the real planner; no Ray runtime is started."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from helpers.cli import main_error
from helpers.media import write_clip, write_contrast_styles

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
