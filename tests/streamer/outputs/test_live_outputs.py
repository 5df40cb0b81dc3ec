"""``stylestream live --output URL``: the real command in a subprocess with the real (untrained)
model on tiny frames, a real nginx-rtmp server and an HLS folder on loopback; what the outputs
sent is read back by independent readers (PyAV on the RTMP URL, the HLS files)."""

from __future__ import annotations

import os
import re
import select
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import av
import numpy as np
import pytest
from helpers.cli import main_error
from helpers.media import encode_tone, write_clip
from helpers.output_readers import SHORT_PROBE, StreamReader
from helpers.rtmp_server import RtmpServer

from adaattn_video.assets import style_images
from streamer.cli import command_config
from streamer.zeromq.control import send_command

STYLE = str(style_images()[0])
SOURCE = "lavfi:testsrc2=size=64x48:rate=15"
SECRET = "k3ySECRETxyz"
BASE = ["live", "--source", SOURCE, "--style", STYLE, "--untrained", "--style-size", "32"]

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _start(args: list[str]) -> tuple[subprocess.Popen[str], str, list[str]]:
    """``stylestream live ARGS`` in a subprocess; returns it, its control endpoint and its
    stderr lines up to the announcement."""
    proc = subprocess.Popen(
        [sys.executable, "-c", "import sys; from streamer.cli import main; sys.exit(main())",
         *args],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1"},
    )  # fmt: skip
    lines: list[str] = []
    deadline = time.monotonic() + 120
    assert proc.stderr is not None
    while True:
        if time.monotonic() > deadline or proc.poll() is not None:
            proc.kill()
            raise AssertionError("live did not start:\n" + "".join(lines) + proc.stderr.read())
        if select.select([proc.stderr], [], [], 0.5)[0]:
            lines.append(proc.stderr.readline())
            match = re.search(r"control on (tcp://127\.0\.0\.1:\d+)", lines[-1])
            if match:
                return proc, match.group(1), lines


def _playlist_entries(playlist: Path) -> list[str]:
    return [line for line in playlist.read_text().splitlines() if line.endswith(".ts")]


@pytest.mark.slow
def test_live_sends_to_rtmp_and_hls_shows_them_in_status_and_closes_them_on_sigterm(
    tmp_path: Path,
) -> None:
    hls_dir = tmp_path / "hls"
    with RtmpServer() as server:
        url = server.url(SECRET)
        proc, control, lines = _start(
            [*BASE, "--realtime", "--zmq", "tcp://127.0.0.1:*", "--control",
             "tcp://127.0.0.1:*", "--output", f"hls:{hls_dir}", "--output", url]
        )  # fmt: skip
        try:
            reader = StreamReader(url).start()
            assert reader.wait(15, 60), reader.errors
            reader.stop()
            # The documented default: RTMP carries a silent AAC track when the source has none.
            with av.open(url, options=SHORT_PROBE, timeout=(5, 3)) as container:
                audio = [s.codec_context.name for s in container.streams.audio]
            assert audio == ["aac"]
            status = send_command(control, {"command": "get-status"})
            by_kind = {o["kind"]: o for o in status["outputs"]}
            assert set(by_kind) == {"zmq", "hls", "rtmp"}
            assert by_kind["rtmp"]["state"] == "running" and by_kind["rtmp"]["frames"] > 0
            assert by_kind["hls"]["state"] == "running" and by_kind["hls"]["frames"] > 0
            assert by_kind["rtmp"]["latency_p50_ms"] is not None
            assert SECRET not in str(status)
            time.sleep(1.5)  # a second HLS segment
            proc.send_signal(signal.SIGTERM)
            out, err = proc.communicate(timeout=60)
        finally:
            if proc.poll() is None:
                proc.kill()
    assert proc.returncode == 128 + signal.SIGTERM, err[-2000:]
    assert {(f.width, f.height) for f in reader.frames} == {(64, 48)}
    playlist = (hls_dir / "index.m3u8").read_text()
    assert playlist.rstrip().endswith("#EXT-X-ENDLIST")  # closed cleanly: a complete playlist
    # The documented HLS defaults (no flag given): 1 s segments, at most 6 in the playlist.
    assert "#EXT-X-TARGETDURATION:1\n" in playlist
    assert 1 <= len(_playlist_entries(hls_dir / "index.m3u8")) <= 6
    frames = 0
    for name in _playlist_entries(hls_dir / "index.m3u8"):
        with av.open(str(hls_dir / name)) as container:
            frames += sum(1 for _ in container.decode(video=0))
    assert frames >= 10
    summary = re.search(r"output hls:\S+: closed, (\d+) frames", out)
    assert summary and int(summary.group(1)) >= frames
    assert "rtmp://127.0.0.1:" in out and "/live/***" in out
    everything = out + err + "".join(lines)
    assert SECRET not in everything  # never printed or logged


def _read_av(url: str, found: dict[str, list], stop: threading.Event) -> None:
    """Decode ``url``'s video and audio until it ends: video pts (s), audio (pts s, seconds,
    peak) into ``found``; retries until a publisher is there."""
    while not stop.is_set():
        try:
            with av.open(url, options=SHORT_PROBE, timeout=(5, 5)) as container:
                if not container.streams.video or not container.streams.audio:
                    time.sleep(0.1)
                    continue
                for frame in container.decode(*container.streams):
                    t = float(frame.pts * frame.time_base)
                    if isinstance(frame, av.AudioFrame):
                        peak = float(np.abs(frame.to_ndarray()).max())
                        found["audio"].append((t, frame.samples / frame.sample_rate, peak))
                    else:
                        found["video"].append(t)
                return
        except (av.error.FFmpegError, OSError):
            time.sleep(0.2)


@pytest.mark.slow
@pytest.mark.parametrize("with_audio", [True, False], ids=["sine", "no-audio"])
def test_rtmp_carries_the_source_audio_in_sync_or_silence(tmp_path: Path, with_audio: bool) -> None:
    clip = write_clip(tmp_path / "in.mp4", frames=75, size=(48, 64), fps=15, audio=with_audio)
    with RtmpServer() as server:
        url = server.url(SECRET)
        found: dict[str, list] = {"video": [], "audio": []}
        stop = threading.Event()
        reader = threading.Thread(target=_read_av, args=(url, found, stop), daemon=True)
        reader.start()
        proc = subprocess.run(
            [
                sys.executable,
                "-c",
                "import sys; from streamer.cli import main; sys.exit(main())",
                "live",
                "--source",
                str(clip.path),
                "--style",
                STYLE,
                "--untrained",
                "--style-size",
                "32",
                "--realtime",
                "--zmq",
                "none",
                "--output",
                url,
            ],
            capture_output=True,
            text=True,
            timeout=180,
            env={**os.environ, "OMP_NUM_THREADS": "1"},
        )  # fmt: skip  (the file ends: live ends)
        reader.join(15)
        stop.set()
    assert proc.returncode == 0, proc.stderr[-2000:]
    video, audio = found["video"], found["audio"]
    assert len(video) >= 30 and audio, (len(video), len(audio))
    video_s = video[-1] + 1 / 15 - video[0]
    audio_s = audio[-1][0] + audio[-1][1] - audio[0][0]
    assert abs(audio_s - video_s) < 0.3 and abs(audio[0][0] - video[0]) < 0.3
    peak = max(p for _, _, p in audio)
    assert peak > 0.1 if with_audio else peak == 0.0


@pytest.mark.parametrize(
    ("url", "message"),
    [
        (f"rtmp://bob:{SECRET}@127.0.0.1/live", "needs an application and a stream key"),
        (f"ftp://127.0.0.1/{SECRET}", "unknown output"),
        (f"srt://127.0.0.1?passphrase={SECRET}", "needs a port"),
    ],
)
def test_a_bad_output_url_is_one_line_without_secrets_and_starts_nothing(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, url: str, message: str
) -> None:
    hls_dir = tmp_path / "hls"
    line = main_error([*BASE, "--output", f"hls:{hls_dir}", "--output", url], capsys)
    assert message in line and SECRET not in line
    assert not hls_dir.exists()  # nothing started, not even the other output


def test_the_same_output_twice_and_no_output_at_all_are_one_line(
    capsys: pytest.CaptureFixture[str],
) -> None:
    url = f"rtmp://127.0.0.1/live/{SECRET}"
    line = main_error([*BASE, "--output", url, "--output", url], capsys)
    assert "given twice" in line and SECRET not in line
    assert "--output URL" in main_error([*BASE, "--zmq", "none"], capsys)


def test_outputs_from_yaml_under_either_name_and_flags(tmp_path: Path) -> None:
    config = tmp_path / "live.yaml"
    config.write_text(
        f"source: '{SOURCE}'\nstyle: {STYLE}\noutput: hls:{tmp_path / 'a'}\n"
        f"outputs: [hls:{tmp_path / 'b'}]\n"
    )
    options = command_config(["live", "--config", str(config), "--untrained"])
    assert options.live.outputs == (f"hls:{tmp_path / 'a'}", f"hls:{tmp_path / 'b'}")
    options = command_config([*BASE, "--output", "ndi:Studio A"])
    assert options.live.outputs == ("ndi:Studio A",)
    assert command_config(BASE).live.outputs == ()  # none by default


def _write_av_clip(path: Path, frames: int = 90, fps: int = 15) -> None:
    """Single-slice H.264 (what RTP carries whole; see write_rtsp_clip) + an AAC sine."""
    with av.open(str(path), "w") as container:
        video = container.add_stream("libx264", rate=fps)
        video.width, video.height, video.pix_fmt = 64, 48, "yuv420p"
        video.codec_context.thread_type = "FRAME"
        sound = container.add_stream("aac", rate=48000)
        sound.layout = "mono"
        for i in range(frames):
            image = np.full((48, 64, 3), 40 + 2 * i, np.uint8)
            container.mux(video.encode(av.VideoFrame.from_ndarray(image, format="rgb24")))
        container.mux(video.encode(None))
        encode_tone(container, sound, round(frames / fps * 48000), 440.0)


@pytest.mark.slow
@pytest.mark.rtsp
def test_rtmp_carries_the_audio_of_an_rtsp_source(tmp_path: Path) -> None:
    from helpers.rtsp_server import RtspServer

    _write_av_clip(tmp_path / "av.mp4")
    with RtspServer(tmp_path / "av.mp4") as camera, RtmpServer() as server:
        url = server.url(SECRET)
        found: dict[str, list] = {"video": [], "audio": []}
        stop = threading.Event()
        reader = threading.Thread(target=_read_av, args=(url, found, stop), daemon=True)
        reader.start()
        cli = "import sys; from streamer.cli import main; sys.exit(main())"
        args = ["live", "--source", camera.url("av"), "--end-of-stream", "stop", "--style",
                STYLE, "--untrained", "--style-size", "32", "--zmq", "none", "--output", url]  # fmt: skip
        proc = subprocess.run(
            [sys.executable, "-c", cli, *args],
            capture_output=True,
            text=True,
            timeout=180,
            env={**os.environ, "OMP_NUM_THREADS": "1"},
        )  # the RTSP clip ends: live ends
        reader.join(15)
        stop.set()
    assert proc.returncode == 0, proc.stderr[-2000:]
    video, audio = found["video"], found["audio"]
    assert len(video) >= 20 and audio, (len(video), len(audio))
    assert max(p for _, _, p in audio) > 0.1  # the camera's sine, not the silent track
    video_s = video[-1] - video[0]
    audio_s = audio[-1][0] + audio[-1][1] - audio[0][0]
    assert abs(audio_s - video_s) < 1.0 and abs(audio[0][0] - video[0]) < 0.5, (video_s, audio_s)
