"""The one statistics module: percentiles, latency windows, live status over intervals and on
request (``get-status`` with ``--status-interval-s 0`` reports current numbers, not zeros)."""

from __future__ import annotations

import threading
import time

import pytest
from helpers.live_helpers import LiveRun, PatternSource
from helpers.network import ANY_PORT

from adaattn_video.assets import style_images
from adaattn_video.settings import StylizerSpec
from streamer.frames import SourceCounters
from streamer.live import LiveConfig
from streamer.stats import (
    LatencyWindow,
    LiveStatusTracker,
    StatsSnapshot,
    latency_percentiles,
    percentile,
)
from streamer.zeromq.control import send_command
from streamer.zeromq.publisher import PublishOptions


def test_percentile_is_nearest_rank_and_rejects_nonsense():
    values = [5.0, 1.0, 4.0, 2.0, 3.0]
    assert percentile(values, 0.0) == 1.0 and percentile(values, 1.0) == 5.0
    assert percentile(values, 0.5) == 3.0 and percentile(list(range(100)), 0.95) == 95
    assert latency_percentiles([]) == (None, None)
    assert latency_percentiles([1.0, 2.0, 3.0, 10.0]) == (2.5, 10.0)
    with pytest.raises(ValueError, match="no values"):
        percentile([], 0.5)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        percentile(values, 1.5)


def test_latency_window_keeps_the_newest_and_answers_since():
    window = LatencyWindow(3, keep_all=True)
    for ms in (1.0, 2.0, 3.0):
        window.add(ms)
    cut = time.monotonic()
    time.sleep(0.01)
    window.add(4.0)
    assert window.since() == [2.0, 3.0, 4.0]  # bounded
    assert window.since(cut) == [4.0]
    assert window.all() == [1.0, 2.0, 3.0, 4.0]  # keep_all: the whole run


def _snapshot(frames_in: int, frames_out: int, dropped: int = 0) -> StatsSnapshot:
    return StatsSnapshot(
        elapsed_s=1.0, frames_in=frames_in, frames_out=frames_out, dropped=dropped,
        discarded=0, fps_in=0.0, fps_out=0.0, recent_fps_out=0.0, stage_busy_s={},
        queue_depths={},
    )  # fmt: skip


def test_tracker_current_is_computed_on_request_and_thread_safe():
    """Counters moving at 100 frames/s: ``current()`` reports about 100 fps from the live
    counters, whether or not any status line was ever made."""
    lock = threading.Lock()
    state = {"out": 0, "in": 0}
    started = time.monotonic()

    def tick() -> None:
        with lock:
            n = int((time.monotonic() - started) * 100)
            state["in"], state["out"] = n + 2, n

    def snapshot() -> StatsSnapshot:
        tick()
        with lock:
            return _snapshot(state["in"], state["out"])

    latencies = LatencyWindow()
    tracker = LiveStatusTracker(
        snapshot=snapshot,
        counters=lambda: SourceCounters(read=state["in"], dropped=3, reconnects=1, outages=1),
        latencies=latencies,
        style_id=lambda: "s",
        window_s=0.5,
    )
    readers: list[dict] = []

    def observe_and_read() -> None:
        for _ in range(40):
            tracker.observe()
            readers.append(tracker.current_dict())
            latencies.add(20.0)
            time.sleep(0.01)

    threads = [threading.Thread(target=observe_and_read) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    now = tracker.current()
    assert now.frames_out > 0 and now.style_id == "s"
    assert now.fps_out == pytest.approx(100, rel=0.3)
    assert now.latency_p50_ms == 20.0 and now.dropped == 3 and now.reconnects == 1
    assert len(readers) == 120 and all(r["frames_out"] >= 0 for r in readers)


@pytest.mark.slow
def test_get_status_reports_current_numbers_with_status_lines_off(untrained_stylizer):
    source = PatternSource(size=(32, 32), fps=20)
    config = LiveConfig(
        "pattern", stylizer=StylizerSpec(styles=(str(style_images()[0]),)), zmq=ANY_PORT, publish=PublishOptions(encoding="rgb24"),
        control=ANY_PORT, status_interval_s=0,
    )  # fmt: skip
    run = LiveRun(config, stylizer=untrained_stylizer, source=source)
    try:
        time.sleep(1.5)
        first = send_command(run.endpoints["control"], {"command": "get-status"})
        time.sleep(1.0)
        second = send_command(run.endpoints["control"], {"command": "get-status"})
    finally:
        result = run.stop()
    assert first["ok"] and first["frames_out"] > 0 and first["fps_out"] > 0
    assert second["frames_out"] > first["frames_out"]  # not a stale number
    assert second["elapsed_s"] >= first["elapsed_s"] + 0.9
    assert second["fps_in"] == pytest.approx(20, rel=0.4)
    assert second["latency_p50_ms"] is not None
    assert result.stats.frames_out >= second["frames_out"]
