"""ZeroMQ publisher and subscriber on real loopback sockets (random ports, linger 0, timeouts)."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
from helpers.network import ANY_PORT

from streamer.frames import Frame
from streamer.zeromq.curve import CurveKeyError, generate_keys
from streamer.zeromq.endpoints import BindError, EndpointError
from streamer.zeromq.publisher import PublishOptions, ZmqSink, ZmqSinkConfig
from streamer.zeromq.subscriber import ReceiveTimeout, Subscriber, SubscriberConfig


def _frame(index: int, height: int = 24, width: int = 32) -> Frame:
    image = np.full((height, width, 3), index % 256, np.uint8)
    image[0, 0] = (1, 2, 3)
    return Frame(index, image, pts=index * 2, time_base=Fraction(1, 30), capture_time_s=time.time())


def _sync(sink: ZmqSink, sub: Subscriber, timeout_s: float = 5.0) -> None:
    """Publish marker frames until the subscription has reached the publisher, then drain.

    PUB/SUB drops whatever is published before the subscription arrives ("slow joiner")."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        sink.publish(_frame(10_000), style_id="sync")
        try:
            sub.receive(timeout_s=0.05)
            break
        except ReceiveTimeout:
            continue
    else:
        raise AssertionError("subscriber never connected")
    while True:
        try:
            sub.receive(timeout_s=0.1)
        except ReceiveTimeout:
            return


def test_every_frame_arrives_in_order_with_header_and_payload() -> None:
    # send_hwm covers the burst: 12 frames sent back to back, faster than the I/O thread drains.
    config = ZmqSinkConfig(ANY_PORT, PublishOptions(encoding="rgb24", send_hwm=64))
    with ZmqSink(config, style_id=lambda: "mosaic") as sink:
        assert sink.endpoint.startswith("tcp://127.0.0.1:")
        with Subscriber(sink.endpoint, receive_timeout_s=5.0) as sub:
            _sync(sink, sub)
            before = sink.frames_sent
            sent = [_frame(i) for i in range(12)]
            for frame in sent:
                sink.write(frame)
            got = [sub.receive() for _ in sent]
            assert sink.frames_sent - before == 12
    assert [g.header.index for g in got] == list(range(12))
    for frame, received in zip(sent, got, strict=True):
        np.testing.assert_array_equal(received.image, frame.image)
        assert received.header.pts == frame.pts
        assert received.header.time_base_fraction == Fraction(1, 30)
        assert received.header.style_id == "mosaic"
        assert received.header.capture_time == frame.capture_time_s
        assert received.header.capture_time <= received.header.publish_time <= received.receive_time


def test_latest_only_returns_the_newest_frame_and_counts_skips() -> None:
    with (
        ZmqSink(ZmqSinkConfig(ANY_PORT, PublishOptions(encoding="jpeg", send_hwm=100))) as sink,
        Subscriber(sink.endpoint, latest_only=True, receive_timeout_s=5.0, receive_hwm=100) as sub,
    ):
        _sync(sink, sub)
        for i in range(20):
            sink.write(_frame(i))
        time.sleep(0.3)  # all 20 are in the subscriber's queue now
        got = sub.receive()
        assert got.header.index == 19
        assert got.skipped == 19
        with pytest.raises(ReceiveTimeout, match=r"no frame from tcp://127\.0\.0\.1"):
            sub.receive(timeout_s=0.2)


def test_receive_timeout_names_the_endpoint() -> None:
    with Subscriber("tcp://127.0.0.1:9", receive_timeout_s=0.2) as sub:
        started = time.monotonic()
        with pytest.raises(ReceiveTimeout, match=r"tcp://127\.0\.0\.1:9 within 0\.2 s"):
            next(iter(sub))
        assert time.monotonic() - started < 2.0


@pytest.mark.parametrize("endpoint", ["tcp://*:5555", "tcp://0.0.0.0:5555", "tcp://192.168.1.4:5"])
def test_non_loopback_bind_is_refused_without_permission(endpoint: str) -> None:
    with pytest.raises(EndpointError, match="--allow-remote-bind"):
        ZmqSinkConfig(endpoint)
    assert ZmqSinkConfig(endpoint, allow_remote_bind=True).endpoint == endpoint


@pytest.mark.parametrize(
    "endpoint", ["127.0.0.1:5555", "tcp://127.0.0.1", "udp://1.2.3.4:5", "tcp://127.0.0.1:70000"]
)
def test_malformed_endpoints_are_refused(endpoint: str) -> None:
    with pytest.raises(EndpointError):
        ZmqSinkConfig(endpoint)


def test_port_in_use_is_a_clear_bind_error() -> None:
    with ZmqSink(ZmqSinkConfig(ANY_PORT)) as first:
        endpoint = first.endpoint
        with pytest.raises(BindError, match=f"cannot bind {endpoint}"):
            ZmqSink(ZmqSinkConfig(endpoint))


def test_curve_only_key_holders_receive(tmp_path: Path) -> None:
    keys = generate_keys(tmp_path / "keys")
    assert (keys / "server.key_secret").stat().st_mode & 0o077 == 0  # secret not world-readable
    other = generate_keys(tmp_path / "other")  # a client key the publisher never authorized
    stranger = tmp_path / "stranger"
    stranger.mkdir()
    (stranger / "server.key").write_bytes((keys / "server.key").read_bytes())
    (stranger / "client.key_secret").write_bytes((other / "client.key_secret").read_bytes())

    config = ZmqSinkConfig(
        ANY_PORT, PublishOptions(encoding="rgb24", send_hwm=64), curve_keys_dir=keys
    )
    with ZmqSink(config) as sink:
        endpoint = sink.endpoint
        member = Subscriber(endpoint, receive_timeout_s=5.0, curve_keys_dir=keys)
        plain = Subscriber(endpoint, receive_timeout_s=0.5)
        outsider = Subscriber(endpoint, receive_timeout_s=0.5, curve_keys_dir=stranger)
        with member, plain, outsider:
            _sync(sink, member)
            sent = [_frame(i) for i in range(10)]
            for frame in sent:
                sink.write(frame)
            got = [member.receive() for _ in sent]
            assert [g.header.index for g in got] == list(range(10))
            np.testing.assert_array_equal(got[-1].image, sent[-1].image)
            for excluded in (plain, outsider):
                with pytest.raises(ReceiveTimeout):
                    excluded.receive()
                assert excluded.frames_received == 0


def test_curve_without_keys_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(CurveKeyError, match="stylestream keys generate"):
        ZmqSink(ZmqSinkConfig(ANY_PORT, curve_keys_dir=tmp_path))
    with pytest.raises(CurveKeyError, match=r"server\.key does not exist"):
        Subscriber(SubscriberConfig("tcp://127.0.0.1:9", curve_keys_dir=tmp_path))
    with pytest.raises(FileExistsError, match="--overwrite"):
        generate_keys(tmp_path / "k")
        generate_keys(tmp_path / "k")


def _rss_bytes() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


_STALLED_SUBSCRIBER = textwrap.dedent(
    """
    import sys, time, zmq
    ctx = zmq.Context()
    sock = ctx.socket(zmq.SUB)
    sock.setsockopt(zmq.RCVHWM, 1)
    sock.setsockopt(zmq.RCVBUF, 65536)
    sock.setsockopt(zmq.SUBSCRIBE, b"")
    sock.connect(sys.argv[1])
    sock.recv_multipart()          # connected and subscribed
    print("ready", flush=True)
    time.sleep(60)                 # then never reads again
    """
)


def test_stalled_subscriber_bounds_publisher_memory_and_rate() -> None:
    """A subscriber that stops reading: the publisher neither buffers without bound nor slows.

    600 distinct 320x240 rgb24 frames are 138 MB; with send_hwm=4 the publisher may hold a few
    frames plus the kernel's socket buffers (a few MB), nowhere near the total."""
    frames = 600
    with ZmqSink(ZmqSinkConfig(ANY_PORT, PublishOptions(encoding="rgb24", send_hwm=4))) as sink:
        # Baseline rate with no subscriber at all (same process, same frames).
        started = time.perf_counter()
        for i in range(frames):
            sink.write(_frame(i, 240, 320))
        alone_s = time.perf_counter() - started

        proc = subprocess.Popen(
            [sys.executable, "-c", _STALLED_SUBSCRIBER, sink.endpoint],
            stdout=subprocess.PIPE,
            text=True,
        )
        try:
            deadline = time.monotonic() + 20
            import select

            while not select.select([proc.stdout], [], [], 0.05)[0]:
                sink.write(_frame(0, 240, 320))
                assert time.monotonic() < deadline, "stalled subscriber never connected"
            assert proc.stdout.readline().strip() == "ready"
            rss_before = _rss_bytes()
            started = time.perf_counter()
            for i in range(frames):
                sink.write(_frame(i, 240, 320))
            stalled_s = time.perf_counter() - started
            growth = _rss_bytes() - rss_before
        finally:
            proc.kill()
            proc.wait()
    assert growth < 40 * 2**20, f"publisher grew by {growth / 2**20:.1f} MB"
    # Publishing must not wait for the stalled reader: same order of time as with nobody.
    assert stalled_s < 3 * alone_s + 0.5, (stalled_s, alone_s)
