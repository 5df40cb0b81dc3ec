"""Output latency on loopback: frame submit -> an independent reader's decode, per kind.

Frames carry frame-counter markers (:mod:`streamer.studio.markers`); the submit time of each
counter is kept, and a PyAV reader on the far side of a real server reads the counter of every
decoded picture: latency = decode time - submit time, one clock (one process). Reported:

- RTMP through nginx-rtmp (``nginx`` + ``libnginx-mod-rtmp``), SRT through
  ``srt-live-transmit`` (caller -> listener -> the reader's pipe), RTSP publish to GStreamer's
  RTSP server in RECORD mode (``tests/helpers/rtsp_record_server.py``) whose MPEG-TS goes into
  a FIFO the reader reads, and HLS (FFmpeg's live HLS demuxer reading the playlist as it
  rolls): p50 / p95 in ms;
- the CPU cost of one extra 720p output (HLS, libx264 zerolatency veryfast): process CPU
  seconds per second of video, with and without it;
- frames lost across an RTMP server restart (kill, 1 s outage, restart).

Run: ``python -m benchmarks.output_latency [--seconds 6]`` (needs the Debian packages above).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from streamer.frames import Frame, FrameSink, SourceInfo
from streamer.outputs import OutputOptions, OutputSet, build_output
from streamer.stats import latency_percentiles
from streamer.studio.markers import draw_marker, read_marker

FPS = 30
INFO = SourceInfo(frame_rate=Fraction(FPS))
PROBE = {"probesize": "32768", "analyzeduration": "200000"}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _frame(i: int, size: tuple[int, int]) -> Frame:
    image = np.random.default_rng(i % 64).integers(40, 200, (*size, 3), dtype=np.uint8)
    draw_marker(image, i)
    return Frame(
        i, image, pts=i * 90000 // FPS, time_base=Fraction(1, 90000), capture_time_s=time.time()
    )


def _feed(
    sink: FrameSink,
    count: int,
    submitted: dict[int, float],
    size=(240, 320),
    start: int = 0,
    at: dict[int, object] | None = None,
) -> None:
    t0 = time.monotonic()
    for i in range(start, start + count):
        if at and i in at:
            at[i]()
        frame = _frame(i, size)
        submitted[i % 2048] = time.monotonic()
        sink.write(frame)
        time.sleep(max(0.0, t0 + (i - start + 1) / FPS - time.monotonic()))


def _read(open_container, decoded: dict[int, float], stop: threading.Event) -> None:
    while not stop.is_set():
        try:
            with open_container() as container:
                if not container.streams.video:
                    continue
                for packet in container.demux():
                    if stop.is_set():
                        return
                    if packet.stream.type != "video":
                        continue
                    for frame in packet.decode():
                        marker = read_marker(frame.to_ndarray(format="rgb24"))
                        if marker is not None:
                            decoded.setdefault(marker, time.monotonic())
        except (av.error.FFmpegError, OSError, EOFError, IndexError):
            time.sleep(0.1)


class _Nginx:
    def __init__(self) -> None:
        listing = subprocess.run(
            ["dpkg", "-L", "libnginx-mod-rtmp"], capture_output=True, text=True, check=False
        ).stdout
        self.module = next(line for line in listing.splitlines() if line.endswith(".so"))
        self.port, self.dir = _free_port(), Path(tempfile.mkdtemp())
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        conf = self.dir / "nginx.conf"
        conf.write_text(
            f"load_module {self.module};\ndaemon off;\nmaster_process off;\n"
            f"error_log {self.dir}/e.log;\npid {self.dir}/n.pid;\nevents {{}}\n"
            f"rtmp {{ server {{ listen 127.0.0.1:{self.port}; application live "
            "{ live on; wait_key on; wait_video on; } } }\n"
        )
        self.proc = subprocess.Popen(["nginx", "-c", str(conf), "-p", str(self.dir)])
        time.sleep(0.5)

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait()


def _latencies(submitted: dict[int, float], decoded: dict[int, float]) -> list[float]:
    return [(decoded[m] - submitted[m]) * 1000 for m in decoded if m in submitted]


def rtmp(seconds: float) -> dict[str, object]:
    server = _Nginx()
    server.start()
    url = f"rtmp://127.0.0.1:{server.port}/live/bench"
    output = build_output(
        url, info=INFO, options=OutputOptions(backoff_initial_s=0.2, backoff_max_s=0.5)
    )
    submitted: dict[int, float] = {}
    decoded: dict[int, float] = {}
    stop = threading.Event()
    _feed(output, FPS, submitted)
    reader = threading.Thread(
        target=_read, args=(lambda: av.open(url, options=PROBE, timeout=(5, 3)), decoded, stop)
    )
    reader.start()
    n = int(seconds * FPS)
    _feed(output, n, submitted, start=FPS)
    p50, p95 = latency_percentiles(_latencies(submitted, decoded))
    # restart: kill at +1 s, start again 1 s later
    restart_at = FPS + n + FPS
    events = {restart_at: server.stop, restart_at + FPS: server.start}
    _feed(output, 4 * FPS, submitted, start=FPS + n, at=events)
    stop.set()
    output.close()
    reader.join(5)
    server.stop()
    status = output.status()
    return {
        "p50_ms": p50,
        "p95_ms": p95,
        "restart_lost_frames": status.drops,
        "reconnects": status.reconnects,
    }


def srt(seconds: float) -> dict[str, object]:
    port = _free_port()
    listener = subprocess.Popen(
        ["srt-live-transmit", "-q", f"srt://127.0.0.1:{port}?mode=listener", "file://con"],
        stdout=subprocess.PIPE,
    )
    time.sleep(0.3)
    output = build_output(f"srt://127.0.0.1:{port}?latency=20", info=INFO)
    submitted: dict[int, float] = {}
    decoded: dict[int, float] = {}
    stop = threading.Event()
    reader = threading.Thread(
        target=_read,
        args=(lambda: av.open(listener.stdout, format="mpegts", options=PROBE), decoded, stop),
    )
    reader.start()
    _feed(output, int(seconds * FPS), submitted)
    stop.set()
    output.close()
    listener.terminate()
    reader.join(5)
    p50, p95 = latency_percentiles(_latencies(submitted, decoded))
    return {"p50_ms": p50, "p95_ms": p95}


def hls(seconds: float) -> dict[str, object]:
    """Submit -> decoded by FFmpeg's HLS demuxer following the playlist (1 s segments)."""
    folder = Path(tempfile.mkdtemp())
    output = build_output(f"hls:{folder}", info=INFO)
    submitted: dict[int, float] = {}
    decoded: dict[int, float] = {}
    stop = threading.Event()
    _feed(output, 2 * FPS, submitted)  # a playlist with segments before the reader starts
    playlist = str(folder / "index.m3u8")
    options = {"live_start_index": "-1", "http_persistent": "0"}
    reader = threading.Thread(
        target=_read, args=(lambda: av.open(playlist, format="hls", options=options), decoded, stop)
    )
    reader.start()
    _feed(output, int(seconds * FPS), submitted, start=2 * FPS)
    stop.set()
    output.close()
    reader.join(5)
    shutil.rmtree(folder, ignore_errors=True)
    p50, p95 = latency_percentiles(_latencies(submitted, decoded))
    return {"p50_ms": p50, "p95_ms": p95}


def rtsp(seconds: float) -> dict[str, object]:
    """Submit -> decoded from the MPEG-TS a RECORD-mode RTSP server writes into a FIFO."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
    from helpers.rtsp_record_server import RtspRecordServer

    folder = Path(tempfile.mkdtemp())
    fifo = folder / "out.ts"
    os.mkfifo(fifo)
    submitted: dict[int, float] = {}
    decoded: dict[int, float] = {}
    stop = threading.Event()
    reader = threading.Thread(
        target=_read,
        args=(lambda: av.open(str(fifo), format="mpegts", options=PROBE), decoded, stop),
    )
    reader.start()  # opening the FIFO for reading lets the server's filesink open it
    with RtspRecordServer(fifo) as server:
        output = build_output(server.url(), info=INFO)
        _feed(output, int(seconds * FPS), submitted)
        output.close()
    stop.set()
    reader.join(5)
    shutil.rmtree(folder, ignore_errors=True)
    p50, p95 = latency_percentiles(_latencies(submitted, decoded))
    return {"p50_ms": p50, "p95_ms": p95}


def cpu_cost(seconds: float) -> dict[str, float]:
    """Process CPU seconds per second of 720p video with no output and with one HLS output."""
    result = {}
    for label in ("none", "one_720p_output"):
        folder = tempfile.mkdtemp()
        outputs = OutputSet([] if label == "none" else [build_output(f"hls:{folder}", info=INFO)])
        frames = int(seconds * FPS)
        began = time.process_time()
        _feed(outputs, frames, {}, size=(720, 1280))
        outputs.close()
        result[label] = (time.process_time() - began) / seconds
        shutil.rmtree(folder, ignore_errors=True)
    result["extra_cpu_cores"] = result["one_720p_output"] - result["none"]
    return result


def run_report(seconds: float = 6.0) -> dict[str, dict[str, object]]:
    """Every kind's loopback latency and the CPU cost of one 720p output
    (``stylestream bench outputs``); a kind whose server program is missing says so in its row."""
    kinds = {
        "rtmp (nginx-rtmp)": rtmp,
        "srt (srt-live-transmit)": srt,
        "rtsp (GStreamer RECORD server -> FIFO)": rtsp,
        "hls (FFmpeg HLS demuxer on the playlist)": hls,
    }
    report: dict[str, dict[str, object]] = {}
    for name, measure in kinds.items():
        try:
            report[name] = measure(seconds)
        except (OSError, RuntimeError, ImportError) as err:  # a server that is not installed
            report[name] = {"skipped": str(err).splitlines()[0] if str(err) else type(err).__name__}
        print(f"{name}: {report[name]}")
    report["cpu per 720p output"] = cpu_cost(seconds)
    print(f"cpu per 720p output: {report['cpu per 720p output']}")
    return report
