"""``stylestream live`` / ``control`` / ``keys`` / ``bench live`` end to end: a real RTSP server,
the real CLI in a subprocess, real sockets on loopback, the real (untrained) model at 64x64."""

from __future__ import annotations

import itertools
import json
import os
import re
import select
import subprocess
import sys
import threading
import time
from pathlib import Path

import av
import numpy as np
import pytest
from helpers.cli import main_error
from helpers.live_helpers import (
    LiveRun,
    PatternSource,
    receive_until,
)
from helpers.media import write_rtsp_clip
from helpers.network import ANY_PORT
from helpers.rtsp_server import RtspServer

from adaattn_video.assets import style_images
from adaattn_video.stylizer import FrameStylizer, StylizerConfig, StylizerSpec
from streamer.cli import main
from streamer.live import LiveConfig
from streamer.regions.switch import RegionSwitch
from streamer.sources import LiveOptions
from streamer.zeromq.control import ControlServer, live_handlers
from streamer.zeromq.publisher import PublishOptions
from streamer.zeromq.subscriber import ReceiveTimeout, Subscriber

STYLE = style_images()[0]

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _stylizer(model) -> FrameStylizer:
    stylizer = FrameStylizer(model, StylizerConfig(style_size=64))
    stylizer.set_style(STYLE)
    return stylizer


def _rtsp_server(clip: Path | None = None) -> RtspServer:
    try:
        return RtspServer(clip).start()
    except RuntimeError as err:
        pytest.fail(f"RTSP test server unavailable: {err}")


def _start_live(args: list[str]) -> tuple[subprocess.Popen[str], str, list[str]]:
    """`stylestream live ARGS` in a subprocess; returns it, its PUB endpoint and its stderr
    lines so far (read on in a thread)."""
    proc = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys; from streamer.cli import main; sys.exit(main())",
            "live",
            *args,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1"},
    )
    lines: list[str] = []
    deadline = time.monotonic() + 120
    endpoint = None
    while endpoint is None:
        if time.monotonic() > deadline or proc.poll() is not None:
            proc.kill()
            raise AssertionError("live did not start:\n" + "".join(lines) + proc.stderr.read())
        if select.select([proc.stderr], [], [], 0.5)[0]:
            line = proc.stderr.readline()
            lines.append(line)
            match = re.search(r"publishing on (tcp://127\.0\.0\.1:\d+)", line)
            if match:
                endpoint = match.group(1)
    threading.Thread(target=lambda: lines.extend(proc.stderr), daemon=True).start()
    return proc, endpoint, lines


@pytest.mark.rtsp
@pytest.mark.slow
def test_rtsp_stream_is_stylized_published_and_recorded(tmp_path: Path, model) -> None:
    clip = tmp_path / "clip.mp4"
    clip_frames = write_rtsp_clip(clip, frames=60)
    server = _rtsp_server(clip)
    record = tmp_path / "out.mp4"
    try:
        proc, endpoint, lines = _start_live(
            [
                "--source", server.url("file"), "--style", str(STYLE), "--untrained",
                "--precision", "fp32",  # compared below with the fp32 model
                "--style-size", "64", "--zmq", ANY_PORT, "--control", "none",
                "--encoding", "rgb24", "--end-of-stream", "stop", "--record", str(record),
                "--status-interval-s", "1",
                "--temporal", "off",  # each payload is compared with per-frame stylization
            ]
        )  # fmt: skip
        received = []
        with Subscriber(endpoint, receive_timeout_s=1.0, receive_hwm=1000) as sub:
            while proc.poll() is None:
                try:
                    received.append(sub.receive())
                except ReceiveTimeout:
                    continue
        stdout = proc.stdout.read()
        assert proc.returncode == 0, "".join(lines) + stdout
    finally:
        server.stop()

    # The summary counts what was published; the subscriber saw all of it from the moment its
    # subscription arrived (PUB/SUB drops what is sent before: the first frames may be missed).
    published = int(re.search(r"(\d+) out", stdout).group(1))
    assert published >= 10
    assert len(received) >= 10
    assert any(
        re.search(r"live \d+ s: in [\d.]+ fps, out [\d.]+ fps, latency", line) for line in lines
    )
    headers = [r.header for r in received]
    assert all(h.version == 1 and h.encoding == "rgb24" for h in headers)
    assert all((h.width, h.height) == (64, 64) and h.style_id == STYLE.stem for h in headers)
    assert all(h.time_base == (1, 90000) for h in headers)
    assert [h.index for h in headers] == sorted({h.index for h in headers})
    pts = [h.pts for h in headers]
    assert all(b > a for a, b in itertools.pairwise(pts))
    for r in received:
        assert r.header.capture_time <= r.header.publish_time <= r.receive_time
        assert r.receive_time - r.header.capture_time < 5.0

    # Each payload is a clip frame stylized by this model and style (the subprocess and this
    # process build the same deterministic untrained model; thread counts may differ, hence 2).
    # Frame i of the stream is clip frame i (or a little later when the first ones were lost).
    stylizer = _stylizer(model)
    for r in received[:: max(1, len(received) // 4)]:
        candidates = clip_frames[r.header.index : r.header.index + 3]
        best = min(np.abs(r.image.astype(int) - stylizer(c).astype(int)).max() for c in candidates)
        assert best <= 2

    # The recording holds every published frame at the published timestamps, and the
    # subscriber got every one of them from its first frame on: nothing lost after joining.
    with av.open(str(record)) as container:
        recorded = [float(f.pts * f.time_base) for f in container.decode(video=0)]
    assert len(recorded) == published
    assert all(b > a for a, b in itertools.pairwise(recorded))
    got = [r.header.time_s for r in received]
    tail = recorded[len(recorded) - len(got) :]
    assert np.allclose(got, tail, atol=1e-3), (got[:3], tail[:3])


@pytest.mark.rtsp
@pytest.mark.slow
def test_server_gone_for_good_ends_with_one_line_and_a_playable_recording(tmp_path: Path) -> None:
    server = _rtsp_server()
    record = tmp_path / "out.mp4"
    try:
        proc, endpoint, lines = _start_live(
            [
                "--source", server.url("live"), "--style", str(STYLE), "--untrained",
                "--style-size", "64", "--zmq", ANY_PORT, "--control", "none",
                "--give-up-after-s", "2", "--read-timeout-s", "1", "--record", str(record),
            ]
        )  # fmt: skip
        with Subscriber(endpoint, receive_timeout_s=30.0) as sub:
            receive_until(sub, lambda fs: len(fs) >= 5)
        server.stop()
        started = time.monotonic()
        proc.wait(timeout=60)
        gave_up_after = time.monotonic() - started
    finally:
        server.stop()
    assert proc.returncode == 2
    errors = [line for line in lines if line.startswith("stylestream: error:")]
    assert len(errors) == 1, "".join(lines)
    assert server.url("live") in errors[0] and "giving up" in errors[0]
    assert "Traceback" not in "".join(lines)
    assert 1.5 < gave_up_after < 20
    # Nothing already produced is lost: the recording is finalized and plays.
    with av.open(str(record)) as container:
        assert len(list(container.decode(video=0))) >= 5


@pytest.mark.rtsp
@pytest.mark.slow
def test_stream_continues_after_the_server_restarts(model) -> None:
    server = _rtsp_server()
    try:
        config = LiveConfig(
            server.url("live"), stylizer=StylizerSpec(styles=(str(STYLE),)), zmq=ANY_PORT, control=None,
            status_interval_s=0.5, source_options=LiveOptions(give_up_after_s=30, read_timeout_s=1.0),
        )  # fmt: skip
        run = LiveRun(config, stylizer=_stylizer(model))
        with Subscriber(run.endpoints["zmq"], receive_timeout_s=30.0) as sub:
            before = receive_until(sub, lambda fs: len(fs) >= 5)
            server.stop()
            time.sleep(1.5)
            server.start()  # same port
            restarted = time.time()
            after = receive_until(
                sub, lambda fs: sum(f.header.capture_time > restarted for f in fs) >= 5
            )
        deadline = time.monotonic() + 10
        while not any("reconnects 1" in line for line in run.status_lines):
            assert time.monotonic() < deadline, run.status_lines
            time.sleep(0.1)
        result = run.stop()
    finally:
        server.stop()
    assert result.status.reconnects == 1 and result.status.outages == 1
    pts = [f.header.pts for f in before + after]
    assert all(b > a for a, b in itertools.pairwise(pts))
    # The status line said so while it happened, and counted it afterwards.
    assert any("SOURCE DOWN (reconnecting)" in line for line in run.status_lines)


@pytest.mark.slow
@pytest.mark.rtsp
def test_stopping_during_an_outage_is_prompt(model) -> None:
    """Ctrl-C (here: the stop event) while the source is reconnecting ends the run at once,
    not after the give-up time: the pipeline interrupts the waiting source."""
    server = _rtsp_server()
    try:
        config = LiveConfig(
            server.url("live"), stylizer=StylizerSpec(styles=(str(STYLE),)), zmq=ANY_PORT, control=None,
            status_interval_s=0, source_options=LiveOptions(give_up_after_s=60, read_timeout_s=1.0),
        )  # fmt: skip
        run = LiveRun(config, stylizer=_stylizer(model))
        with Subscriber(run.endpoints["zmq"], receive_timeout_s=30.0) as sub:
            receive_until(sub, lambda fs: len(fs) >= 3)
        server.stop()
        time.sleep(1.0)  # reconnecting now
        started = time.monotonic()
        result = run.stop()
        assert time.monotonic() - started < 5.0
    finally:
        server.stop()
    assert result.status.outages == 1 and result.status.reconnects == 0


@pytest.mark.slow
def test_a_stalled_subscriber_does_not_slow_the_pipeline(model) -> None:
    """A subscriber that never reads: the publisher drops its frames instead of waiting.

    Its queue (send_hwm=2) and socket buffers (4 KB here) fill after a few 12 KB frames; a
    publisher that waited for it would then stall the pipeline. Compared with no subscriber."""

    def frames_out(stalled: bool) -> int:
        config = LiveConfig(
            "pattern", stylizer=StylizerSpec(styles=(str(STYLE),)), zmq=ANY_PORT,
            publish=PublishOptions(encoding="rgb24", send_hwm=2, send_buffer_bytes=4096), control=None, status_interval_s=0, seconds=2.5,
        )  # fmt: skip
        run = LiveRun(config, stylizer=_stylizer(model), source=PatternSource(fps=20))
        proc = None
        if stalled:
            proc = subprocess.Popen(
                [sys.executable, "-c", _NEVER_READS, run.endpoints["zmq"]], stdout=subprocess.PIPE
            )
        try:
            run.thread.join(30)
            result = run.stop()
        finally:
            if proc is not None:
                proc.kill()
                proc.wait()
        return result.stats.frames_out

    alone = frames_out(stalled=False)
    stalled = frames_out(stalled=True)
    assert alone >= 15
    assert stalled >= 15, "the stalled subscriber stalled the pipeline"
    assert stalled >= 0.5 * alone, (stalled, alone)  # same rate, up to a shared machine's noise


_NEVER_READS = """
import sys, time, zmq
socket = zmq.Context().socket(zmq.SUB)
socket.setsockopt(zmq.RCVHWM, 1)
socket.setsockopt(zmq.RCVBUF, 4096)
socket.setsockopt(zmq.SUBSCRIBE, b"")
socket.connect(sys.argv[1])
time.sleep(60)
"""


# -- one-line errors ---------------------------------------------------------------------------
def test_missing_webcam_is_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    # No camera exists on CI machines: the missing-device error is the real thing here.
    missing = next(str(i) for i in range(64) if not Path(f"/dev/video{i}").exists())
    line = main_error(["live", "--source", missing, "--style", str(STYLE), "--untrained"], capsys)
    assert f"camera {missing} not found: /dev/video{missing} does not exist" in line


def test_unreachable_rtsp_is_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    line = main_error(
        ["live", "--source", "rtsp://127.0.0.1:9/cam", "--style", str(STYLE), "--untrained",
         "--open-timeout-s", "2"], capsys,
    )  # fmt: skip
    assert "cannot open rtsp://127.0.0.1:9/cam" in line


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--zmq", "tcp://0.0.0.0:5555"], "--allow-remote-bind"),
        (["--control", "tcp://*:5556"], "--allow-remote-bind"),
        (["--zmq", "none"], "nothing to do"),
        (["--encoding", "png"], "invalid choice"),
        (["--size", "12x12"], "sides >= 16"),
        (["--curve-keys", "/nonexistent/keys"], "stylestream keys generate"),
    ],
)
def test_bad_live_options_are_one_line(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, extra: list[str], message: str
) -> None:
    clip = tmp_path / "clip.mp4"
    write_rtsp_clip(clip, frames=3)
    argv = ["live", "--source", str(clip), "--style", str(STYLE), "--untrained", *extra]
    if message == "invalid choice":  # argparse's own error (exit 2 too)
        with pytest.raises(SystemExit) as info:
            main(argv)
        assert info.value.code == 2 and message in capsys.readouterr().err
        return
    assert message in main_error(argv, capsys)


def test_unknown_yaml_key_is_one_line(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    config = tmp_path / "live.yaml"
    config.write_text("source: '0'\nstyle: [a.jpg]\nbitrate: 5\n")
    assert "unknown key 'bitrate'" in main_error(["live", "--config", str(config)], capsys)


def test_shipped_configs_parse() -> None:
    from streamer.cli import command_config

    root = Path(__file__).resolve().parents[3] / "configs"
    for name, source in (("live-webcam.yaml", "0"), ("rtsp-relay.yaml", "rtsp://")):
        config = command_config(["live", "--config", str(root / name)]).live
        assert config.source.startswith(source)
        assert config.zmq == "tcp://127.0.0.1:5555" and config.control == "tcp://127.0.0.1:5556"


# -- control and keys commands ---------------------------------------------------------------
def test_control_command_switches_style_and_reports_errors(
    capsys: pytest.CaptureFixture[str], model, tmp_path: Path
) -> None:
    other = style_images()[1]
    switch = RegionSwitch(_stylizer(model))
    with ControlServer(live_handlers(switch), ANY_PORT) as server:
        assert main(["control", server.endpoint, "set-style", str(other)]) == 0
        assert f"style set to {other.stem}" in capsys.readouterr().out
        assert switch.style_id == other.stem
        assert main(["control", server.endpoint, "set-alpha", "0.5", "--timeout-s", "5"]) == 0
        assert switch.alpha == 0.5
        assert main(["control", server.endpoint, "status"]) == 0
        status = json.loads(capsys.readouterr().out.split("\n", 1)[1])
        assert status["style_id"] == other.stem and status["alpha"] == 0.5
        bad = tmp_path / "bad.jpg"
        bad.write_text("not an image")
        line = main_error(["control", server.endpoint, "set-style", str(bad)], capsys)
        assert "refused" in line and "bad.jpg" in line
        assert switch.style_id == other.stem  # unchanged


def test_keys_generate_command(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    assert main(["keys", "generate", str(tmp_path / "keys")]) == 0
    for name in ("server.key", "server.key_secret", "client.key", "client.key_secret"):
        assert (tmp_path / "keys" / name).is_file()
    assert (tmp_path / "keys" / "authorized_clients" / "client.key").is_file()
    assert "--overwrite" in main_error(["keys", "generate", str(tmp_path / "keys")], capsys)


@pytest.mark.slow
def test_bench_live_prints_and_saves_numbers(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    out = tmp_path / "bench.json"
    argv = ["bench", "live", "--size", "64x64", "--fps", "20", "--seconds", "3",
            "--style-size", "32", "--device", "cpu", "--json", str(out)]  # fmt: skip
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "model alone" in printed and "capture->received p50" in printed
    report = json.loads(out.read_text())
    assert report["frames_received"] >= 5
    assert report["model_ms"] > 0 and report["delivered_fps"] > 0
    latency = report["latency_capture_to_receive_ms"]
    assert 0 < latency["p50"] <= latency["p95"]
    # A live source faster than nothing is never queued: latency is bounded by a few frames.
    assert latency["p95"] < 2000
