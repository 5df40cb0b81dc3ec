"""The network source against a real RTSP server on loopback (Debian's GStreamer RTSP server).

The server runs as a subprocess of the system python (see tests/rtsp_server.py); killing it is
a real outage, SIGSTOP a real stall, and a port nobody listens on a real refusal.
"""

from __future__ import annotations

import itertools
import time
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
from helpers.media import CLIP_FPS, CLIP_FRAMES, write_rtsp_clip
from helpers.rtsp_server import RtspServer

from streamer.sources.network import (
    NetworkSource,
    NetworkSourceConfig,
    StreamLostError,
    StreamOpenError,
    is_network_url,
)

pytestmark = [pytest.mark.rtsp, pytest.mark.slow]


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[np.ndarray]]:
    path = tmp_path_factory.mktemp("rtsp") / "clip.mp4"
    return path, write_rtsp_clip(path)


@pytest.fixture
def server(clip: tuple[Path, list[np.ndarray]]):
    try:
        with RtspServer(clip[0]) as running:
            yield running
    except RuntimeError as err:
        pytest.fail(f"RTSP test server unavailable: {err}")


def _config(url: str, **overrides: object) -> NetworkSourceConfig:
    options: dict = dict(
        open_timeout_s=3.0, read_timeout_s=1.5, backoff_initial_s=0.2, backoff_max_s=0.5
    )
    options.update(overrides)
    return NetworkSourceConfig(url, **options)


def test_file_mount_frames_arrive_intact_with_increasing_timestamps(server, clip) -> None:
    _, reference = clip
    received = []
    with NetworkSource(
        _config(server.url("file"), end_of_stream="stop", max_queue_frames=64)
    ) as source:
        assert source.live is True
        for frame in source:
            received.append(frame)
    assert len(received) >= CLIP_FRAMES - 2  # a consumer this fast loses nothing (or the first)
    indices = [f.index for f in received]
    assert indices == sorted(indices) and len(set(indices)) == len(indices)
    pts = [f.pts for f in received]
    assert all(b > a for a, b in itertools.pairwise(pts)), pts
    assert all(f.time_base == Fraction(1, 90000) for f in received)
    # Timestamps follow the clip's 15 fps (the server paces in real time).
    assert np.median(np.diff(pts)) == pytest.approx(90000 / CLIP_FPS, rel=0.05)
    for frame in received:
        assert frame.image.shape == (64, 64, 3) and frame.image.dtype == np.uint8
        assert time.time() - frame.capture_time_s < 30
    # The payload is the clip's own picture: H.264 is passed through, so decoding the stream
    # gives exactly what decoding the file gives.
    last = received[-1].image.astype(int)
    assert min(np.abs(last - ref).mean() for ref in reference) < 0.5


def test_slow_consumer_gets_the_newest_frame_and_drops_are_counted(server) -> None:
    ages = []
    with NetworkSource(_config(server.url("live"))) as source:
        for count, frame in enumerate(source):
            ages.append(time.time() - frame.capture_time_s)
            time.sleep(0.25)  # a model slower than the 15 fps source
            if count == 8:
                break
        dropped = source.counters().dropped
    assert dropped >= 8  # ~3 frames arrive per 0.25 s, one is taken
    # Latency never builds: each frame taken is at most about one source frame (67 ms) old,
    # plus scheduling noise; a backlog would add 0.18 s per iteration (1.4 s by the end).
    assert max(ages[1:]) < 0.35, ages


def test_reconnects_after_the_server_restarts(server) -> None:
    frames = []
    with NetworkSource(_config(server.url("live"), give_up_after_s=20)) as source:
        for frame in source:
            frames.append(frame)
            if len(frames) == 10:
                server.stop()  # an abrupt outage
                time.sleep(1.0)
                assert source.counters().in_outage or source.counters().outages == 1
                server.start()  # same port
            if len(frames) == 25:
                break
        stats = source.stats
    assert stats.outages == 1 and stats.reconnects == 1
    assert (source.counters().outages, source.counters().reconnects) == (1, 1)
    assert stats.outage_time_s >= 0.9
    pts = [f.pts for f in frames]
    assert all(b > a for a, b in itertools.pairwise(pts)), "timestamps went backwards"
    # The outage shows as a gap in time (as long as the wall-clock one), not a jump backwards.
    pts_gap_s = max(np.diff(pts)) / 90000
    wall_gap_s = max(np.diff([f.capture_time_s for f in frames]))
    assert pts_gap_s >= 0.9
    assert pts_gap_s == pytest.approx(wall_gap_s, abs=0.3)
    assert [f.index for f in frames] == sorted(f.index for f in frames)


def test_a_stalled_server_is_an_outage_after_the_read_timeout(server) -> None:
    with NetworkSource(
        _config(server.url("live"), read_timeout_s=1.0, give_up_after_s=20)
    ) as source:
        got_after = 0
        for count, _frame in enumerate(source):
            if count == 5:
                server.pause()  # connection open, no data
                time.sleep(2.5)
                assert source.in_outage
                server.resume()
            elif count > 5:
                got_after += 1
                if got_after == 5:
                    break
        assert source.stats.outages == 1 and source.stats.reconnects == 1
        assert "timed out" in (source.stats.last_error or "")


def test_a_server_that_never_returns_ends_with_a_clear_error(server) -> None:
    after_stop = []
    config = _config(server.url("live"), give_up_after_s=2.0, during_outage="repeat")
    with NetworkSource(config) as source:
        started = None
        with pytest.raises(StreamLostError, match=r"giving up") as info:
            for count, frame in enumerate(source):
                if count == 3:
                    server.stop()
                    started = time.monotonic()
                elif started is not None:
                    after_stop.append(frame)
        waited = time.monotonic() - started
    assert server.url("live") in str(info.value)
    assert "--give-up-after-s" in str(info.value)
    assert 1.5 <= waited < 6.0
    # during_outage="repeat": the last picture kept coming at about the stream's rate.
    # (the first one or two may still be frames read just before the server died)
    repeats = [b for a, b in itertools.pairwise(after_stop) if b.index == a.index]
    assert len(repeats) >= 5
    assert all(np.array_equal(r.image, after_stop[-1].image) for r in repeats)
    assert all(b.capture_time_s > a.capture_time_s for a, b in itertools.pairwise(repeats))


def test_unreachable_server_fails_fast_naming_the_url() -> None:
    started = time.monotonic()
    source = NetworkSource(_config("rtsp://127.0.0.1:9/live"))
    with pytest.raises(StreamOpenError, match=r"cannot open rtsp://127\.0\.0\.1:9/live"):
        source.__enter__()
    assert time.monotonic() - started < 3.5


def test_unknown_mount_is_a_clear_error(server) -> None:
    source = NetworkSource(_config(server.url("nothing-here")))
    with pytest.raises(StreamOpenError, match="cannot open"):
        source.__enter__()


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"transport": "quic"}, "transport must be"),
        ({"read_timeout_s": 0}, "read_timeout_s must be > 0"),
        ({"backoff_max_s": 0.01}, "backoff_max_s must be >="),
        ({"during_outage": "black"}, "during_outage must be"),
        ({"end_of_stream": "loop"}, "end_of_stream must be"),
    ],
)
def test_bad_settings_are_rejected(overrides: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        NetworkSourceConfig("rtsp://127.0.0.1:8554/x", **overrides)


def test_url_detection() -> None:
    assert is_network_url("rtsp://cam.local/stream")
    assert is_network_url("HTTPS://example.org/live.m3u8")
    assert is_network_url("srt://127.0.0.1:9000")
    assert not is_network_url("clip.mp4")
    assert not is_network_url("0")
    with pytest.raises(ValueError, match="expected a network URL"):
        NetworkSourceConfig("clip.mp4")
