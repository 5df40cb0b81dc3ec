"""``stylestream bench serve``: one ``serve`` process with N streams vs N ``live`` processes.

For each N, in the same run on the same machine: N lavfi test patterns (``testsrc2`` at
``--size``/``--fps``, paced in real time like cameras) are stylized

(a) by ONE ``stylestream serve`` process (one model; the newest frame of every stream batched
    into one call, each with its own style), and
(b) by N separate ``stylestream live`` processes (one model each, batch 1),

each process started as a real subprocess (random weights; speed does not depend on their
values) and watched by a subscriber here. Reported per N: total frames/s delivered and each
stream's latency capture -> received (p50/p95), over the run minus a warm-up; the batching gain
is (a)'s total fps / (b)'s. Printed first: the model alone in this process, one call for B
frames each with its own style, per B (the gain batching itself can give). CPU threads: the serve process gets ``threads`` (default: all
cores); each live process ``max(1, threads // N)``, so both forms use the same cores.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any

import zmq

from adaattn_video.assets import style_images
from streamer.stats import percentile

WARMUP_S = 2.0  # first model calls, subscriptions settling (after every process's first frame)
_MAIN = "import sys; from streamer.cli import main; sys.exit(main())"
ENDPOINT = re.compile(r"publishing on (tcp://\S+)")


@dataclass(frozen=True)
class BenchServeConfig:
    streams: tuple[int, ...] = (1, 2, 4)
    size: tuple[int, int] = (96, 160)  # (height, width)
    fps: float = 15.0
    seconds: float = 20.0
    weights: str | None = None
    device: str = "auto"
    precision: str = "auto"
    threads: int | None = None

    def __post_init__(self) -> None:
        if not self.streams or min(self.streams) < 1:
            raise ValueError(f"streams must be counts >= 1, got {self.streams}")
        if self.seconds <= WARMUP_S:
            raise ValueError(f"seconds must be > {WARMUP_S} (the warm-up), got {self.seconds}")
        if self.fps <= 0:
            raise ValueError(f"fps must be > 0, got {self.fps}")


class _Watcher:
    """A SUB socket receiving every message of one publisher in a thread; keeps
    (stream, receive time, latency capture -> receive)."""

    def __init__(self, endpoint: str) -> None:
        self.endpoint = endpoint
        self.samples: list[tuple[str, float, float]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="bench-watch", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        context = zmq.Context()
        socket = context.socket(zmq.SUB)
        socket.setsockopt(zmq.SUBSCRIBE, b"")
        socket.setsockopt(zmq.RCVHWM, 10_000)
        socket.setsockopt(zmq.RCVTIMEO, 200)
        socket.connect(self.endpoint)
        try:
            while not self._stop.is_set():
                try:
                    parts = socket.recv_multipart()
                except zmq.Again:
                    continue
                now = time.time()
                header = json.loads(parts[-2])
                stream = parts[0].decode() if len(parts) == 3 else self.endpoint
                self.samples.append(
                    (stream, time.monotonic(), 1000 * (now - header["capture_time"]))
                )
        finally:
            socket.close(linger=0)
            context.term()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)


def _launch(command: list[str], threads: int) -> subprocess.Popen[str]:
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
    return subprocess.Popen(
        [sys.executable, "-c", _MAIN, *command],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )


def _endpoint(proc: subprocess.Popen[str], name: str) -> str:
    """Wait for the process's "publishing on ENDPOINT" line (then keep its stderr drained)."""
    assert proc.stderr is not None
    lines = []
    for line in proc.stderr:
        lines.append(line)
        match = ENDPOINT.search(line)
        if match:
            threading.Thread(target=proc.stderr.read, daemon=True).start()
            return match.group(1).rstrip(";")
    proc.wait()
    raise RuntimeError(f"{name} did not start: {''.join(lines[-5:])}")


def _model_flags(config: BenchServeConfig) -> list[str]:
    flags = ["--device", config.device, "--precision", config.precision, "--style-size", "256"]
    return flags + (["--weights", config.weights] if config.weights else ["--untrained"])


def _source(config: BenchServeConfig, index: int) -> str:
    height, width = config.size
    # Different patterns per stream (same cost): testsrc2 and its mirrored versions.
    flip = ("", ",hflip", ",vflip", ",hflip,vflip")[index % 4]
    return f"lavfi:testsrc2=size={width}x{height}:rate={config.fps:g}{flip}"


def _measure(samples: list[tuple[str, float, float]], start: float, end: float) -> dict[str, Any]:
    window = [(s, t, latency) for s, t, latency in samples if start <= t <= end]
    per_stream: dict[str, list[float]] = defaultdict(list)
    for stream, _, latency in window:
        per_stream[stream].append(latency)
    span = max(1e-6, end - start)
    return {
        "total_fps": len(window) / span,
        "streams": {
            name: {
                "fps": len(values) / span,
                "p50_ms": percentile(values, 0.5),
                "p95_ms": percentile(values, 0.95),
            }
            for name, values in sorted(per_stream.items())
        },
    }


def _run_processes(commands: list[list[str]], threads: int, seconds: float) -> dict[str, Any]:
    """Start every process at once, watch them all, measure while ALL of them are running
    (from the last one's first frame + a warm-up to the first one's last frame)."""
    procs = [_launch(command, threads) for command in commands]
    watchers: list[_Watcher] = []
    try:
        for proc, command in zip(procs, commands, strict=True):
            watchers.append(_Watcher(_endpoint(proc, command[0])))
        for proc in procs:
            proc.wait(timeout=seconds + 180)
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        for watcher in watchers:
            watcher.stop()
    firsts = [min((t for _, t, _ in w.samples), default=None) for w in watchers]
    lasts = [max((t for _, t, _ in w.samples), default=None) for w in watchers]
    if any(t is None for t in firsts + lasts):
        raise RuntimeError("a process published nothing: raise --seconds (model loading)")
    start, end = max(firsts) + WARMUP_S, min(lasts)  # type: ignore[type-var]
    if end - start < 2.0:
        raise RuntimeError(
            f"only {max(0.0, end - start):.1f} s with every process running: raise --seconds"
        )
    samples = [sample for watcher in watchers for sample in watcher.samples]
    return _measure(samples, start, end) | {"window_s": end - start}


def model_batch_times(
    config: BenchServeConfig, batches: tuple[int, ...], threads: int, repeats: int = 5
) -> dict[int, float]:
    """The model alone, in this process: ms per CALL of a batch of B frames, each with its own
    style (:func:`~adaattn_video.mixed_batch.stylize_per_frame`), for each B; the best of
    ``repeats`` calls (a shared machine only ever makes calls slower)."""
    import torch

    from adaattn_video.checkpoint import open_model
    from adaattn_video.mixed_batch import FrameStyle, stylize_per_frame
    from adaattn_video.settings import PRECISIONS, resolve_device, resolve_precision
    from benchmarks.timing import time_calls

    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        device = resolve_device(config.device)
        model = open_model(config.weights, untrained=config.weights is None).eval().to(device)
        precision = resolve_precision(config.precision, device)
        model.set_compute_dtype(PRECISIONS[precision], channels_last=True)
        generator = torch.Generator().manual_seed(0)
        out: dict[int, float] = {}
        with torch.inference_mode():
            styles = [
                model.encode_style(torch.rand(1, 3, 256, 256, generator=generator).to(device))
                for _ in range(max(batches))
            ]
            for batch in batches:
                content = torch.rand(batch, 3, *config.size, generator=generator).to(device)
                frame_styles = [FrameStyle((styles[b],), (1.0,)) for b in range(batch)]
                times = time_calls(
                    partial(stylize_per_frame, model, content, frame_styles),
                    device, repeats=repeats, warmup=1,
                )  # fmt: skip
                out[batch] = min(times)
        return out
    finally:
        torch.set_num_threads(previous)


def _serve_command(config: BenchServeConfig, count: int, style: str) -> list[str]:
    """(a): one ``serve`` process with ``count`` streams."""
    command = [
        "serve",
        *_model_flags(config),
        "--zmq", "tcp://127.0.0.1:*",
        "--control", "none",
        "--status-interval-s", "0",
        "--seconds", f"{config.seconds:g}",
        "--style", style,
    ]  # fmt: skip
    for index in range(count):
        command += ["--stream", f"s{index}={_source(config, index)}"]
    return command


def _live_command(config: BenchServeConfig, index: int, style: str) -> list[str]:
    """(b): one of the ``live`` processes, each with its own source."""
    return [
        "live",
        "--source", _source(config, index),
        "--realtime",
        "--style", style,
        *_model_flags(config),
        "--zmq", "tcp://127.0.0.1:*",
        "--control", "none",
        "--status-interval-s", "0",
        "--seconds", f"{config.seconds:g}",
    ]  # fmt: skip


def _model_line(model_ms: dict[int, float]) -> str:
    return "model alone (best of 5), one call for B frames each with its own style: " + ", ".join(
        f"B={b} {ms:.1f} ms ({ms / b:.1f} ms/frame, {model_ms[1] * b / ms:.2f}x)"
        if 1 in model_ms
        else f"B={b} {ms:.1f} ms ({ms / b:.1f} ms/frame)"
        for b, ms in model_ms.items()
    )


def _print_row(row: dict[str, Any], fps: float, print_line: Callable[[str], None]) -> None:
    count, gain = row["streams"], row["batching_gain"]
    for label, result in (
        ("serve (1 process)", row["serve"]),
        (f"live ({count} processes)", row["live"]),
    ):
        lat = list(result["streams"].values())
        p50 = "/".join(f"{s['p50_ms']:.0f}" for s in lat) or "-"
        p95 = "/".join(f"{s['p95_ms']:.0f}" for s in lat) or "-"
        print_line(
            f"  {count} stream(s), {label}: {result['total_fps']:.1f} frames/s total; "
            f"per-stream latency p50 {p50} ms, p95 {p95} ms"
        )
    print_line(
        f"  {count} stream(s): batching gain "
        + ("-" if gain is None else f"{gain:.2f}x")
        + f" (demand {count * fps:g} frames/s)"
    )


def _run_count(
    config: BenchServeConfig, count: int, threads: int, styles: list[str]
) -> dict[str, Any]:
    """(a) and (b) with ``count`` streams: one row of the report."""
    served = _run_processes([_serve_command(config, count, styles[0])], threads, config.seconds)
    live_commands = [
        _live_command(config, index, styles[index % len(styles)]) for index in range(count)
    ]
    separate = _run_processes(live_commands, max(1, threads // count), config.seconds)
    gain = served["total_fps"] / separate["total_fps"] if separate["total_fps"] else None
    return {"streams": count, "serve": served, "live": separate, "batching_gain": gain}


def run_bench_serve(
    config: BenchServeConfig, *, print_line: Callable[[str], None] = print
) -> dict[str, Any]:
    threads = config.threads or os.cpu_count() or 1
    height, width = config.size
    styles = [str(path) for path in style_images()]
    print_line(
        f"bench serve: {width}x{height} lavfi sources at {config.fps:g} fps each (real time), "
        f"{config.seconds:g} s per run, device {config.device}, precision {config.precision}, "
        f"{'random weights' if not config.weights else config.weights}; {threads} CPU thread(s)"
    )
    model_ms = model_batch_times(config, tuple(sorted(set(config.streams))), threads)
    print_line(_model_line(model_ms))
    rows = []
    for count in config.streams:
        rows.append(_run_count(config, count, threads, styles))
        _print_row(rows[-1], config.fps, print_line)
    return {
        "size": f"{width}x{height}",
        "fps_per_stream": config.fps,
        "seconds": config.seconds,
        "device": config.device,
        "precision": config.precision,
        "threads": threads,
        "model_ms_per_call": model_ms,
        "runs": rows,
    }
