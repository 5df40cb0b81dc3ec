"""Segment-parallel rendering (streamer.cluster): planning, segment render + join, and the same
on a real local Ray runtime (``ray.init(num_cpus=2)``, shared by the module: Ray takes ~10 s to
start). Clips are tiny (96x64, 24 fps, a few seconds, untrained model, 32 px style)."""

from __future__ import annotations

import contextlib
import dataclasses
import itertools
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from fractions import Fraction
from pathlib import Path

import pytest
from helpers.media import audio_packets, count_decodable_frames, frame_times, write_clip

from adaattn_video.assets import DEFAULT_STYLE
from adaattn_video.settings import StylizerSpec
from streamer.cluster.job import Job, JobExistsError, JobMismatchError, fingerprint
from streamer.cluster.join import SegmentInvalidError, join_segments, verify_segment_file
from streamer.cluster.plan import cut_segments, plan_video
from streamer.cluster.segment import render_segment
from streamer.guard import OutputOverlapError
from streamer.render import RenderConfig, build_stylizer, render
from streamer.temporal.options import TemporalOptions

pytestmark = pytest.mark.usefixtures("one_torch_thread")

SIZE = (64, 96)  # (height, width)


def _config(clip: Path, output: Path | str, **changes) -> RenderConfig:
    """A tiny render; ``changes`` of :class:`StylizerSpec` fields (``alpha``...) go to the
    stylizer, the others to the :class:`RenderConfig`."""
    spec_fields = {f.name for f in dataclasses.fields(StylizerSpec)}
    spec = StylizerSpec(
        styles=(str(DEFAULT_STYLE),),
        untrained=True,
        style_size=32,
        device="cpu",
        precision="fp32",
        **{k: v for k, v in changes.items() if k in spec_fields},
    )
    rest = {k: v for k, v in changes.items() if k not in spec_fields}
    rest.setdefault("motion", TemporalOptions(temporal="off"))  # segments == one render, exactly
    return RenderConfig(input=str(clip), output=str(output), stylizer=spec, **rest)


def _png_bytes(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.suffix == ".png"}


# -- planning ----------------------------------------------------------------------------------
@pytest.mark.parametrize("segment_s", [0.3, 1.0, 2.5, 100.0])
def test_segments_hold_every_frame_once_and_cut_on_keyframes(segment_s):
    base = Fraction(1, 48)
    pts = [0]
    for i in range(1, 150):  # variable frame rate: steps of 1, 2, 3 ticks
        pts.append(pts[-1] + 1 + i % 3)
    keyframes = pts[::20]
    segments = cut_segments(pts, keyframes, base, segment_s)
    covered = [p for s in segments for p in pts[s.first_frame : s.first_frame + s.frames]]
    assert covered == pts  # every frame exactly once, in order
    for prev, nxt in itertools.pairwise(segments):
        assert prev.end_pts == nxt.start_pts and prev.first_frame + prev.frames == nxt.first_frame
        target = round(Fraction(segment_s) / base)
        assert nxt.start_pts >= prev.start_pts + target  # at least segment_s long
        if nxt.start_pts not in keyframes:  # only when no keyframe is near the target
            want = prev.start_pts + target
            assert not [k for k in keyframes if want <= k < want + target // 2]
    if segment_s == 2.5:  # keyframes (every ~0.8 s) are always within half a segment
        assert all(s.start_pts in keyframes for s in segments)
    assert segments[-1].end_pts is None
    if segment_s >= 100:
        assert len(segments) == 1


def test_segments_without_keyframes_cut_at_the_target_time():
    base = Fraction(1, 24)
    pts = list(range(240))
    segments = cut_segments(pts, [0], base, 2.0)
    assert [s.start_pts for s in segments] == [0, 48, 96, 144, 192]
    assert sum(s.frames for s in segments) == 240


def test_plan_of_a_real_clip(tmp_path):
    clip = write_clip(tmp_path / "in.mp4", frames=60, size=SIZE, fps=24, gop=12)
    plan = plan_video(clip.path, 1.0)
    assert [p * plan.time_base for p in plan.frame_pts] == clip.times
    assert len(plan.segments) == 3  # 2.5 s: cuts at keyframes 1 s and 2 s; 0.5 s left joins
    assert plan.has_audio


# -- segments rendered apart and joined (no Ray) -----------------------------------------------
@pytest.fixture(scope="module")
def clip3(tmp_path_factory):
    """3 s with audio, a keyframe every 0.5 s: 3 segments of 1 s."""
    folder = tmp_path_factory.mktemp("clip3")
    return write_clip(folder / "in.mp4", frames=72, size=SIZE, fps=24, audio=True, gop=12)


@pytest.fixture(scope="module")
def stylizer(clip3):
    return build_stylizer(_config(clip3.path, "x.mp4"), "cpu")


@pytest.mark.slow
def test_joined_segments_keep_every_time_and_the_audio(clip3, stylizer, tmp_path):
    plan = plan_video(clip3.path, 1.0)
    assert len(plan.segments) == 3
    files = []
    for segment in plan.segments:
        result = render_segment(_config(clip3.path, tmp_path / "o.mp4"), segment,
                                plan.time_base, stylizer)  # fmt: skip
        ((name, data),) = result.files.items()
        (tmp_path / name).write_bytes(data)
        verify_segment_file(tmp_path / name, plan.segment_pts(segment), plan.time_base)
        files.append(tmp_path / name)
    out = tmp_path / "out.mp4"
    starts = [s.start_pts for s in plan.segments]
    joined = join_segments(files, out, starts=starts, time_base=plan.time_base,
                           audio_from=str(clip3.path))  # fmt: skip
    assert joined.video_packets == 72
    assert frame_times(out) == clip3.times
    assert audio_packets(out) == audio_packets(clip3.path)
    assert b"moof" in out.read_bytes()  # the crash-safe fragmented layout
    old = tmp_path / "old.mp4"
    old.write_bytes(b"an older output")
    with pytest.raises(SegmentInvalidError):  # a segment joined twice: times go backwards
        join_segments([files[0], files[0]], old, starts=[0, 0], time_base=plan.time_base,
                      audio_from=None, overwrite=True)  # fmt: skip
    assert old.read_bytes() == b"an older output"  # joined under a temporary name: untouched
    assert not [p for p in tmp_path.iterdir() if ".partial" in p.name]
    with pytest.raises(OutputOverlapError, match="overwrite the input"):  # even with overwrite
        join_segments(files, clip3.path, starts=starts, time_base=plan.time_base,
                      audio_from=str(clip3.path), overwrite=True)  # fmt: skip
    assert frame_times(clip3.path) == clip3.times
    with pytest.raises(SegmentInvalidError):
        verify_segment_file(files[1], plan.segment_pts(plan.segments[0]), plan.time_base)


@pytest.mark.slow
def test_png_segments_equal_a_single_render(clip3, stylizer, tmp_path):
    plan = plan_video(clip3.path, 1.0)
    parts: dict[str, bytes] = {}
    for segment in plan.segments:
        parts.update(render_segment(_config(clip3.path, tmp_path / "seg/"), segment,
                                    plan.time_base, stylizer).files)  # fmt: skip
    render(_config(clip3.path, tmp_path / "ref/"), progress=False, stylizer=stylizer)
    assert parts == _png_bytes(tmp_path / "ref")


def test_job_manifest_refuses_other_settings(clip3, tmp_path):
    plan = plan_video(clip3.path, 1.0)
    config = _config(clip3.path, tmp_path / "o.mp4")
    folder = tmp_path / "job"
    key = fingerprint(config, plan, 1.0)
    Job.open(folder, fingerprint=key, output=str(config.output), plan=plan, resume=False,
             overwrite=False)  # fmt: skip
    with pytest.raises(JobExistsError, match="--resume"):
        Job.open(folder, fingerprint=key, output=config.output, plan=plan, resume=False,
                 overwrite=False)  # fmt: skip
    other = fingerprint(_config(clip3.path, tmp_path / "o.mp4", alpha=0.5), plan, 1.0)
    assert other != key
    with pytest.raises(JobMismatchError):
        Job.open(folder, fingerprint=other, output=config.output, plan=plan, resume=True,
                 overwrite=False)  # fmt: skip


def test_ray_missing_is_one_line(clip3, tmp_path, monkeypatch, capsys):
    from streamer.cli import main

    monkeypatch.setitem(sys.modules, "ray", None)  # as if Ray were not installed
    code = main(["render", str(clip3.path), "--style", str(DEFAULT_STYLE), "--untrained",
                 "-o", str(tmp_path / "o.mp4"), "--ray"])  # fmt: skip
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert len(err) == 1 and "pip install -e '.[ray]'" in err[0]
    assert not list(tmp_path.iterdir())  # nothing written


def test_ray_options_need_ray(clip3, tmp_path, capsys):
    from streamer.cli import main

    code = main(["render", str(clip3.path), "--style", str(DEFAULT_STYLE), "--untrained",
                 "-o", str(tmp_path / "o.mp4"), "--resume", "--workers", "2"])  # fmt: skip
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1
    assert "--workers, --resume apply to Ray renders only: add --ray" in err[0]


def _render_args(clip: Path, output: str, *extra: str) -> list[str]:
    return ["render", str(clip), "-o", output, "--style", str(DEFAULT_STYLE), "--untrained",
            "--style-size", "32", "--device", "cpu", "--no-progress", *extra]  # fmt: skip


def test_ray_output_never_overwrites_an_input(tmp_path, capsys):
    pytest.importorskip("ray", reason="Ray is not installed (pip install -e '.[ray]')")
    from streamer.cli import main

    folder = tmp_path / "in"
    folder.mkdir()
    clip = write_clip(folder / "a.mp4", frames=12, size=SIZE, fps=24, audio=False)
    before = sorted((p.name, p.read_bytes()) for p in folder.iterdir())
    # one input onto itself; many inputs into their own folder (without --overwrite the
    # input would look like a complete earlier output); with --overwrite too
    for output, flags in itertools.product((str(clip.path), f"{folder}/"),
                                           ((), ("--overwrite",))):  # fmt: skip
        code = main([*_render_args(folder if output.endswith("/") else clip.path, output,
                                   "--ray", *flags)])  # fmt: skip
        err = capsys.readouterr().err.strip().splitlines()
        assert code == 2 and len(err) == 1, err
        expected = "writes into the input folder" if output.endswith("/") else "would overwrite"
        assert expected in err[0] and "--overwrite never" in err[0], err[0]
    assert sorted((p.name, p.read_bytes()) for p in folder.iterdir()) == before  # untouched


def test_ray_options_from_a_config_file(clip3, tmp_path, capsys):
    from streamer.cli import main

    config = tmp_path / "render.yaml"
    config.write_text("resume: true\nsegment_s: 2\n")  # Ray options without `ray:`
    code = main([*_render_args(clip3.path, str(tmp_path / "o.mp4"), "--config", str(config))])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1
    assert "--segment-s, --resume apply to Ray renders only: add --ray" in err[0]
    config.write_text("ray: true\nresume: true\noverwrite: true\n")  # read as a --ray render
    code = main([*_render_args(clip3.path, str(tmp_path / "o.mp4"), "--config", str(config))])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and err == [
        "stylestream: error: give either --resume or --overwrite, not both"
    ]
    assert not list(tmp_path.glob("o.mp4*"))


# -- on a real local Ray runtime ---------------------------------------------------------------
# ``ray_runtime``: tests/streamer/cluster/conftest.py (one runtime for the whole session)


def _cluster(**changes):
    from streamer.cluster.runner import ClusterConfig

    return ClusterConfig(**{"segment_s": 1.0, "workers": 2, **changes})


@pytest.fixture(scope="module")
def ray_mp4(ray_runtime, clip3, tmp_path_factory):
    """``clip3`` rendered on Ray into an MP4: (output, result, progress seen)."""
    from streamer.cluster.runner import render_on_ray

    out = tmp_path_factory.mktemp("ray_mp4") / "out.mp4"
    seen = []
    result = render_on_ray(_config(clip3.path, out), _cluster(), progress=False,
                           monitor=seen.append)  # fmt: skip
    return out, result, seen


@pytest.mark.ray
@pytest.mark.slow
def test_ray_mp4_is_exact(ray_mp4, clip3):
    out, result, seen = ray_mp4
    assert result.workers == 2 and result.segments_rendered == 3 and result.retries == 0
    assert result.frames == 72
    assert frame_times(out) == clip3.times  # same count, same times
    assert count_decodable_frames(out) == 72  # FFmpeg decodes all of it
    assert audio_packets(out) == audio_packets(clip3.path)  # copied once, byte-identical
    assert b"moof" in out.read_bytes()
    assert seen and seen[-1].frames_done == seen[-1].frames_total == 72
    assert not Path(f"{out}.stylestream-job").exists()  # job folder gone once complete
    assert "segments: 3 rendered" in result.summary()


@pytest.mark.ray
@pytest.mark.slow
def test_ray_mp4_decodes_in_gstreamer(ray_mp4, tmp_path):
    gst = shutil.which("gst-launch-1.0")
    if gst is None:
        pytest.skip("GStreamer (gst-launch-1.0) is not installed")
    out, _, _ = ray_mp4
    raw = tmp_path / "frames.rgb"
    done = subprocess.run(
        [gst, "-q", "filesrc", f"location={out}", "!", "qtdemux", "!", "h264parse", "!",
         "decodebin", "!", "videoconvert", "!", "video/x-raw,format=RGB", "!", "filesink",
         f"location={raw}"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    if done.returncode != 0 and "decodebin" in done.stderr and "missing" in done.stderr.lower():
        pytest.skip(f"GStreamer has no H.264 decoder here: {done.stderr.strip()[-200:]}")
    assert done.returncode == 0, done.stderr[-2000:]
    assert raw.stat().st_size == 72 * SIZE[0] * SIZE[1] * 3  # every frame decoded


@pytest.mark.ray
@pytest.mark.slow
def test_ray_png_equals_single_process(ray_runtime, clip3, stylizer, tmp_path):
    from streamer.cluster.runner import render_on_ray

    render_on_ray(_config(clip3.path, tmp_path / "ray/"), _cluster(), progress=False)
    render(_config(clip3.path, tmp_path / "one/"), progress=False, stylizer=stylizer)
    ray_frames, one_frames = _png_bytes(tmp_path / "ray"), _png_bytes(tmp_path / "one")
    assert len(one_frames) == 72
    assert ray_frames == one_frames  # bit-identical, same names


@pytest.mark.ray
@pytest.mark.slow
@pytest.mark.parametrize("kind", ["mp4", "png"])
def test_ray_shared_dir(ray_runtime, clip3, tmp_path, kind):
    from streamer.cluster.runner import render_on_ray

    shared = tmp_path / "shared"
    shared.mkdir()
    out = tmp_path / ("out.mp4" if kind == "mp4" else "frames/")
    seen: list[list[str]] = []  # what the shared folder held while segments were finishing
    result = render_on_ray(
        _config(clip3.path, out), _cluster(shared_dir=str(shared)), progress=False,
        monitor=lambda _: seen.append([p.name for p in shared.rglob("*")]),
    )  # fmt: skip
    assert result.segments_rendered == 3
    assert any(name.endswith(".stylestream-job") for names in seen for name in names)
    assert not list(shared.iterdir())  # the job folder is gone once the output is complete
    if kind == "mp4":
        assert frame_times(out) == clip3.times
        assert audio_packets(out) == audio_packets(clip3.path)
    else:
        assert len(_png_bytes(out)) == 72


@pytest.mark.ray
@pytest.mark.slow
def test_killed_worker_is_retried(ray_runtime, clip3, tmp_path):
    from streamer.cluster.runner import render_on_ray

    out = tmp_path / "out.mp4"
    # the worker rendering segment 1 SIGKILLs its own process after 5 frames (first try only)
    result = render_on_ray(_config(clip3.path, out), _cluster(kill_worker_at=(1, 5)),
                           progress=False)  # fmt: skip
    assert result.retries == 1
    assert "retries: 1" in result.summary()
    assert frame_times(out) == clip3.times
    assert audio_packets(out) == audio_packets(clip3.path)


@pytest.mark.ray
@pytest.mark.slow
@pytest.mark.parametrize("kind", ["mp4", "png"])
def test_killed_driver_resumes(ray_runtime, tmp_path, kind):
    from streamer.cluster.runner import render_on_ray

    clip = write_clip(tmp_path / "in.mp4", frames=96, size=SIZE, fps=24, audio=True, gop=6)
    out = tmp_path / ("out.mp4" if kind == "mp4" else "frames/")
    job = Path(f"{out}.stylestream-job") if kind == "mp4" else out / ".stylestream-job"
    manifest = job / "manifest.json"
    address = ray_runtime.get_runtime_context().gcs_address
    command = [str(Path(sys.executable).with_name("stylestream")), "render", str(clip.path),
               "-o", str(out) + ("/" if kind == "png" else ""), "--style", str(DEFAULT_STYLE),
               "--untrained", "--style-size", "32", "--device", "cpu", "--precision", "fp32",
               "--ray", address, "--workers", "2", "--segment-s", "0.5", "--no-progress",
               "--temporal", "off"]  # fmt: skip
    driver = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and driver.poll() is None:
        if manifest.is_file() and len(json.loads(manifest.read_text())["segments"]) >= 2:
            break
        time.sleep(0.05)
    assert driver.poll() is None, driver.communicate()[0].decode()[-2000:]
    driver.send_signal(signal.SIGKILL)  # the driver dies mid-job
    driver.wait()
    done = len(json.loads(manifest.read_text())["segments"])
    total = len(plan_video(clip.path, 0.5).segments)
    assert total >= 6 and 2 <= done < total

    config = _config(clip.path, f"{out}/" if kind == "png" else out)
    resumed = render_on_ray(config, _cluster(segment_s=0.5, resume=True), progress=False)
    assert resumed.segments_reused == done  # finished segments were not rendered again
    assert resumed.segments_rendered == total - done
    assert not job.exists()
    fresh = tmp_path / ("fresh.mp4" if kind == "mp4" else "fresh/")
    render_on_ray(dataclasses.replace(config, output=str(fresh)), _cluster(segment_s=0.5),
                  progress=False)  # fmt: skip
    if kind == "png":  # stylized pixels are deterministic: the very same files
        assert _png_bytes(out) == _png_bytes(fresh) and len(_png_bytes(out)) == 96
    else:  # x264 output may differ bit-wise between runs; times and audio may not
        assert frame_times(out) == frame_times(fresh) == clip.times
        assert count_decodable_frames(out) == 96
        assert audio_packets(out) == audio_packets(clip.path)


@pytest.mark.ray
@pytest.mark.slow
def test_many_inputs_into_a_folder(ray_runtime, tmp_path, capsys):
    from streamer.cli import main

    inputs = tmp_path / "in"
    inputs.mkdir()
    long = write_clip(inputs / "long.mp4", frames=60, size=SIZE, fps=24, gop=12)
    short = write_clip(inputs / "short.mkv", frames=10, size=SIZE, fps=24, audio=False)
    (inputs / "notes.txt").write_text("not a video")
    outdir = tmp_path / "out"
    outdir.mkdir()
    # through the command line (the module's Ray runtime is used as it is)
    command = ["render", str(inputs), "-o", f"{outdir}/", "--style", str(DEFAULT_STYLE),
               "--untrained", "--style-size", "32", "--device", "cpu", "--precision", "fp32",
               "--ray", "--workers", "2", "--segment-s", "1", "--no-progress"]  # fmt: skip
    assert main(command) == 0
    printed = capsys.readouterr().out
    assert sorted(p.name for p in outdir.iterdir()) == ["long.mp4", "short.mkv"]
    assert frame_times(outdir / "long.mp4") == long.times
    assert frame_times(outdir / "short.mkv") == frame_times(short.path)  # Matroska: ms
    assert "segments: 4 rendered, 0 reused" in printed  # long: 3 segments, short: whole
    assert main(command) == 0
    again = capsys.readouterr().out
    assert "nothing to render: 2 complete output(s) skipped" in again  # not rendered again


# -- two nodes: a head and a worker in two network namespaces ---------------------------------
def _ip(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["ip", *args], capture_output=True, text=True, timeout=30)


def _stop_namespace_processes(namespace: str) -> None:
    """End the processes started inside ``namespace`` (by pid: never `ray stop`, which would
    end every Ray process of the machine, the module's runtime included)."""
    pids = [int(p) for p in _ip("netns", "pids", namespace).stdout.split()]
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and any(_alive(p) for p in pids):
            time.sleep(0.2)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie (exited, not yet reaped) counts as gone
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except OSError:
        return False


@pytest.fixture
def two_node_cluster(tmp_path):
    """A Ray head in one network namespace and a worker node in another, joined by a veth pair
    (10.x.y.1 <-> 10.x.y.2, no loopback address). Yields (head namespace, head address, env)."""
    ray_cli = Path(sys.executable).with_name("ray")
    if not ray_cli.is_file():
        pytest.skip("the `ray` command is not installed (pip install -e '.[ray]')")
    tag = f"ss{os.getpid() % 100000}"
    head_ns, worker_ns = f"{tag}h", f"{tag}w"
    made = _ip("netns", "add", head_ns)
    if made.returncode != 0:
        pytest.skip(f"network namespaces cannot be made here (`ip netns add`: "
                    f"{made.stderr.strip() or made.returncode}; needs root / CAP_NET_ADMIN)")  # fmt: skip
    subnet = f"10.{200 + os.getpid() % 50}.{os.getpid() // 50 % 250}"
    head_ip, worker_ip = f"{subnet}.1", f"{subnet}.2"
    env = {**os.environ, "RAY_AUTH_MODE": "token", "RAY_USAGE_STATS_ENABLED": "0"}
    current = Path(tempfile.gettempdir()) / "ray" / "ray_current_cluster"  # `ray start` sets it
    before = current.read_bytes() if current.is_file() else None
    try:
        steps = [
            ("netns", "add", worker_ns),
            ("link", "add", f"{tag}a", "type", "veth", "peer", "name", f"{tag}b"),
            ("link", "set", f"{tag}a", "netns", head_ns),
            ("link", "set", f"{tag}b", "netns", worker_ns),
            ("-n", head_ns, "addr", "add", f"{head_ip}/24", "dev", f"{tag}a"),
            ("-n", worker_ns, "addr", "add", f"{worker_ip}/24", "dev", f"{tag}b"),
            ("-n", head_ns, "link", "set", f"{tag}a", "up"),
            ("-n", worker_ns, "link", "set", f"{tag}b", "up"),
            ("-n", head_ns, "link", "set", "lo", "up"),
            ("-n", worker_ns, "link", "set", "lo", "up"),
        ]
        for step in steps:
            done = _ip(*step)
            if done.returncode != 0:
                pytest.skip(f"cannot set up the namespaces (ip {' '.join(step)}: {done.stderr})")
        for namespace, args in (
            (head_ns, ["--head", f"--node-ip-address={head_ip}", "--port=6379",
                       "--include-dashboard=false"]),
            (worker_ns, [f"--address={head_ip}:6379", f"--node-ip-address={worker_ip}"]),
        ):  # fmt: skip
            started = subprocess.run(
                ["ip", "netns", "exec", namespace, str(ray_cli), "start", "--num-cpus=1",
                 "--disable-usage-stats", *args],
                env=env, capture_output=True, text=True, timeout=120,
            )  # fmt: skip
            assert started.returncode == 0, started.stdout[-2000:] + started.stderr[-2000:]
        yield head_ns, f"{head_ip}:6379", env
    finally:
        for namespace in (worker_ns, head_ns):
            _stop_namespace_processes(namespace)
            _ip("netns", "del", namespace)
        if before is None:  # else `ray.init()` elsewhere would look for this dead cluster
            current.unlink(missing_ok=True)
        else:
            current.write_bytes(before)


@pytest.mark.ray
@pytest.mark.netns
@pytest.mark.slow
def test_two_node_cluster_renders_the_same(two_node_cluster, clip3, tmp_path):
    namespace, address, env = two_node_cluster
    out = tmp_path / "out.mp4"
    command = ["ip", "netns", "exec", namespace, str(Path(sys.executable).with_name("stylestream")),
               "render", str(clip3.path), "-o", str(out), "--style", str(DEFAULT_STYLE),
               "--untrained", "--style-size", "32", "--device", "cpu", "--precision", "fp32",
               "--ray", address, "--workers", "2", "--segment-s", "1", "--no-progress"]  # fmt: skip
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert "workers: 2 (cpu) on 2 node(s)" in done.stdout  # one actor per node (1 CPU each)
    assert frame_times(out) == clip3.times
    assert audio_packets(out) == audio_packets(clip3.path)
    assert count_decodable_frames(out) == 72


@pytest.mark.ray
@pytest.mark.slow
def test_bench_render_on_ray(ray_runtime, capsys, tmp_path):
    from streamer.cli import main

    report = tmp_path / "bench.json"
    code = main(["bench", "render", "--ray", "--workers", "1", "2", "--size", "96x64",
                 "--seconds", "2", "--segment-s", "0.5", "--join-seconds", "3",
                 "--style-size", "32", "--device", "cpu", "--json", str(report)])  # fmt: skip
    assert code == 0
    printed = capsys.readouterr().out
    data = json.loads(report.read_text())
    assert [row["workers"] for row in data["rows"]] == [1, 2]
    assert all(row["frames"] == 48 and row["fps"] > 0 for row in data["rows"])
    assert data["join_s_per_minute"] > 0 and data["single_fps"] > 0
    assert "per hour of video" in printed and "| 2 |" in printed
