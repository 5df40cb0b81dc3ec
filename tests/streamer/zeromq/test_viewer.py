"""``stylestream view``: the page in a real headless browser (Debian's chromium), the HTTP
endpoints, and recording, against a real publisher on loopback."""

from __future__ import annotations

import http.client
import itertools
import json
import queue
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import av
import cv2
import numpy as np
import pytest
from helpers.browser import screenshot
from helpers.media import pattern_frame
from helpers.network import ANY_PORT

from streamer.frames import Frame
from streamer.zeromq.publisher import PublishOptions, ZmqSink, ZmqSinkConfig
from streamer.zeromq.subscriber import ReceiveTimeout, Subscriber
from streamer.zeromq.viewer import (
    ViewerConfig,
    ViewerError,
    ViewerResult,
    run_viewer,
    subscriber_config,
)
from streamer.zeromq.wire import decode_jpeg, encode_jpeg

SIZE = (120, 160)  # (height, width)


class Publisher:
    """Publishes pattern frames (a bar moving every frame) at ``fps`` from a thread."""

    def __init__(self, encoding: str = "jpeg", fps: float = 20.0) -> None:
        self.sink = ZmqSink(ZmqSinkConfig(ANY_PORT, PublishOptions(encoding=encoding, send_hwm=64)))
        self.endpoint = self.sink.endpoint
        self.sent: list[Frame] = []
        self._stop = threading.Event()

        def run() -> None:
            for index in itertools.count():
                if self._stop.is_set():
                    return
                frame = Frame(index, pattern_frame(index, *SIZE), capture_time_s=time.time())
                self.sink.publish(frame, style_id="mosaic")
                self.sent.append(frame)
                time.sleep(1 / fps)

        self._thread = threading.Thread(target=run, daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self.sink.close()


@pytest.fixture
def publisher() -> Iterator[Publisher]:
    running = Publisher()
    yield running
    running.close()


class Viewer:
    """``run_viewer`` in a thread; ``url`` once serving; ``stop()`` returns its result."""

    def __init__(self, config: ViewerConfig) -> None:
        self.stop_event = threading.Event()
        self._ready: queue.Queue = queue.Queue()
        self._result: queue.Queue = queue.Queue()

        def target() -> None:
            try:
                self._result.put(
                    run_viewer(config, on_ready=self._ready.put, stop_event=self.stop_event)
                )
            except BaseException as err:
                self._ready.put(None)
                self._result.put(err)

        self.thread = threading.Thread(target=target, daemon=True)
        self.thread.start()
        info = self._ready.get(timeout=20)
        assert info is not None, self._result.get()
        self.url = info["url"]

    def stop(self) -> ViewerResult:
        self.stop_event.set()
        self.thread.join(20)
        result = self._result.get(timeout=1)
        if isinstance(result, BaseException):
            raise result
        return result


def _get(url: str, path: str) -> tuple[int, str, bytes]:
    host, port = url.removeprefix("http://").rstrip("/").split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=10)
    try:
        connection.request("GET", path)
        response = connection.getresponse()
        return response.status, response.getheader("Content-Type", ""), response.read()
    finally:
        connection.close()


def _wait_for_frames(url: str, count: int = 3, timeout_s: float = 20.0) -> dict:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        status = json.loads(_get(url, "/status.json")[2])
        if status["frames"] >= count:
            return status
        time.sleep(0.1)
    raise AssertionError("the viewer received no frames")


def test_http_endpoints_serve_the_page_the_newest_frame_and_the_mjpeg_stream(
    publisher: Publisher,
) -> None:
    viewer = Viewer(ViewerConfig(publisher.endpoint, http="127.0.0.1:0"))
    try:
        status_code, kind, page = _get(viewer.url, "/")
        assert status_code == 200 and kind.startswith("text/html")
        assert b'src="stream.mjpg"' in page
        status = _wait_for_frames(viewer.url)
        assert status["header"]["style_id"] == "mosaic"
        assert (status["header"]["width"], status["header"]["height"]) == (160, 120)
        assert status["fps"] > 5 and not status["stale"]

        status_code, kind, jpeg = _get(viewer.url, "/frame.jpg")
        assert status_code == 200 and kind == "image/jpeg"
        image = decode_jpeg(jpeg)
        assert image.shape == (*SIZE, 3)
        # JPEG payloads are forwarded as published, not re-encoded: the bytes are exactly
        # what the publisher sent for one of the latest frames (JPEG encoding is deterministic).
        index = json.loads(_get(viewer.url, "/status.json")[2])["header"]["index"]
        published = {
            encode_jpeg(pattern_frame(i, *SIZE), 90): i
            for i in range(max(0, index - 10), index + 1)
        }
        assert jpeg in published

        # The MJPEG stream: multipart parts with JPEGs of successive frames.
        host, port = viewer.url.removeprefix("http://").rstrip("/").split(":")
        connection = http.client.HTTPConnection(host, int(port), timeout=10)
        connection.request("GET", "/stream.mjpg")
        response = connection.getresponse()
        assert response.getheader("Content-Type").startswith("multipart/x-mixed-replace")
        data = b""
        while data.count(b"\xff\xd9\r\n") < 3:
            data += response.read1(65536)
        connection.close()
        parts = [p for p in data.split(b"--stylestreamframe\r\n") if p]
        jpegs = [p.split(b"\r\n\r\n", 1)[1][:-2] for p in parts[:3]]
        images = [decode_jpeg(j) for j in jpegs]
        assert all(i.shape == (*SIZE, 3) for i in images)
        assert np.abs(images[0].astype(int) - images[2].astype(int)).mean() > 1  # it moves

        assert _get(viewer.url, "/nothing")[0] == 404
    finally:
        result = viewer.stop()
    assert result.frames >= 3


def test_rgb24_streams_are_shown_as_jpeg() -> None:
    publisher = Publisher(encoding="rgb24")
    try:
        viewer = Viewer(ViewerConfig(publisher.endpoint, http="127.0.0.1:0"))
        try:
            index = _wait_for_frames(viewer.url)["header"]["index"]
            status_code, _, jpeg = _get(viewer.url, "/frame.jpg")
            assert status_code == 200
            shown = decode_jpeg(jpeg).astype(int)
            # Newest frame: at or after the one the status named; q85 JPEG of smooth content.
            errors = [
                np.abs(shown - pattern_frame(i, *SIZE).astype(int)).mean()
                for i in range(index, index + 5)
            ]
            assert min(errors) < 6
        finally:
            viewer.stop()
    finally:
        publisher.close()


def test_record_writes_every_received_frame(publisher: Publisher, tmp_path: Path) -> None:
    out = tmp_path / "view.mp4"
    result = run_viewer(
        ViewerConfig(
            publisher.endpoint, http=None, record=str(out), frames=15, receive_timeout_s=20
        )
    )
    assert result.frames == 15 and result.recorded == 15 and result.record == out
    with av.open(str(out)) as container:
        frames = list(container.decode(video=0))
    assert len(frames) == 15
    times = [float(f.pts * f.time_base) for f in frames]
    assert all(b > a for a, b in itertools.pairwise(times))
    # Timestamps follow capture times: 14 intervals of about 1/20 s.
    assert 0.4 < times[-1] - times[0] < 3.0
    assert frames[0].width == 160 and frames[0].height == 120


def test_no_publisher_ends_with_a_timeout_error_and_no_empty_file(tmp_path: Path) -> None:
    out = tmp_path / "nothing.mp4"
    config = ViewerConfig("tcp://127.0.0.1:9", http=None, record=str(out), receive_timeout_s=0.5)
    with pytest.raises(ReceiveTimeout, match=r"no frame from tcp://127\.0\.0\.1:9"):
        run_viewer(config)
    assert not out.exists()


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"http": None}, "nothing to do"),
        ({"http": "0.0.0.0:8080"}, "--allow-remote-http"),
        ({"http": "localhost"}, "HOST:PORT"),
        ({"frames": 0}, "frames must be >= 1"),
    ],
)
def test_bad_viewer_settings(options: dict, message: str) -> None:
    with pytest.raises(ViewerError, match=message):
        ViewerConfig("tcp://127.0.0.1:5555", **options)


def _screenshot(url: str, path: Path) -> np.ndarray:
    screenshot(url, path, ready="[...document.images].some(i => i.naturalWidth > 0)")
    image = cv2.imread(str(path))
    assert image is not None, f"chromium wrote no screenshot to {path}"
    return image


@pytest.mark.browser
@pytest.mark.slow
def test_the_page_shows_the_moving_stream_in_a_real_browser(
    publisher: Publisher, tmp_path: Path
) -> None:
    viewer = Viewer(ViewerConfig(publisher.endpoint, http="127.0.0.1:0"))
    try:
        _wait_for_frames(viewer.url)
        first = _screenshot(viewer.url, tmp_path / "a.png")
        time.sleep(0.5)
        second = _screenshot(viewer.url, tmp_path / "b.png")
    finally:
        viewer.stop()
    # The page background is #111; the picture (160x120 pattern) sits in the middle.
    for shot in (first, second):
        picture = shot[(shot.astype(int) - 17).max(axis=2) > 40]
        assert len(picture) > 0.5 * SIZE[0] * SIZE[1], "no stream picture on the page"
    # Two moments of a moving stream: the screenshots differ.
    assert np.abs(first.astype(int) - second.astype(int)).mean() > 0.5


@pytest.mark.parametrize("streams", [None, ("a", "b")], ids=["live", "serve"])
def test_showing_takes_the_newest_frame_per_stream(streams: tuple[str, ...] | None) -> None:
    """The viewer's receive settings (no --record): a ``live`` publisher (two-part messages,
    one stream) gives only its newest frame, skipping the queued older ones; a ``serve``
    publisher (one topic per stream) gives the newest frame of EACH stream, so a grid never
    loses a stream to a busier one."""
    sink = ZmqSink(ZmqSinkConfig(ANY_PORT, PublishOptions(send_hwm=64)))
    config = subscriber_config(ViewerConfig(endpoint=sink.endpoint, http="127.0.0.1:0"))
    assert config.latest_only and config.stream is None
    image = pattern_frame(0, 32, 48)
    names = streams or (None,)
    with Subscriber(config) as subscriber:
        for _ in range(100):  # until connected (ZeroMQ drops PUB messages before that)
            sink.publish(Frame(0, image, capture_time_s=time.time()), stream=names[0])
            try:
                subscriber.receive(timeout_s=0.1)
                break
            except ReceiveTimeout:
                continue
        time.sleep(0.3)
        while True:  # drop what the connection loop left queued
            try:
                subscriber.receive(timeout_s=0.3)
            except ReceiveTimeout:
                break
        sent = [(index, names[index % len(names)]) for index in range(1, 8)]
        for index, name in sent:
            sink.publish(Frame(index, image, capture_time_s=time.time()), stream=name)
        time.sleep(0.5)  # all of them are queued at the subscriber now
        got = [subscriber.receive(timeout_s=2) for _ in names]
        with pytest.raises(ReceiveTimeout):
            subscriber.receive(timeout_s=0.3)
    sink.close()
    newest = {name: max(i for i, n in sent if n == name) for name in names}
    assert {f.header.stream: f.header.index for f in got} == newest
    # every other frame sent was skipped, and counted for its own stream
    assert sum(f.skipped for f in got) == len(sent) - len(names)
