"""Property-based tests of the wire decoder: random and mutated messages never raise anything
but WireFormatError, and whatever decodes is a valid frame (hypothesis, bounded examples)."""

from __future__ import annotations

import json
import math
import time

import numpy as np
import pytest
import zmq
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from streamer.frames import Frame
from streamer.zeromq.subscriber import Subscriber
from streamer.zeromq.wire import (
    MAX_SIDE,
    WireFormatError,
    decode_frame,
    encode_frame,
    encode_jpeg,
    jpeg_size,
)

SETTINGS = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _valid_message(encoding: str, height: int = 6, width: int = 8) -> list[bytes]:
    image = np.arange(height * width * 3, dtype=np.uint8).reshape(height, width, 3)
    _, parts = encode_frame(Frame(3, image, pts=3, time_base=None), encoding=encoding)
    return [bytes(p) for p in parts]


VALID = {"rgb24": _valid_message("rgb24"), "jpeg": _valid_message("jpeg")}
VALID_HEADER = json.loads(VALID["rgb24"][0])

json_scalars = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20)
json_values = st.recursive(
    json_scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)


def assert_decodes_or_refuses(parts) -> None:
    try:
        header, image = decode_frame(parts)
    except WireFormatError:
        return
    # anything accepted is a consistent frame
    assert image.dtype == np.uint8 and image.shape == (header.height, header.width, 3)
    assert 1 <= header.width <= MAX_SIDE and 1 <= header.height <= MAX_SIDE
    assert math.isfinite(header.capture_time) and math.isfinite(header.publish_time)


@SETTINGS
@given(st.lists(st.binary(max_size=300), max_size=4))
def test_random_parts(parts):
    assert_decodes_or_refuses(parts)


@SETTINGS
@given(
    st.dictionaries(st.sampled_from([*VALID_HEADER, "x"]), json_values, max_size=12),
    st.binary(max_size=400),
)
def test_random_headers(fields, payload):
    header = json.dumps({**VALID_HEADER, **fields}, allow_nan=True).encode()
    assert_decodes_or_refuses([header, payload])


@SETTINGS
@given(
    st.sampled_from(["rgb24", "jpeg"]),
    st.integers(0, 1),
    st.lists(st.tuples(st.integers(0, 10**6), st.integers(0, 255)), min_size=1, max_size=8),
    st.integers(-50, 50),
)
def test_mutated_messages(encoding, which, flips, cut):
    parts = [bytearray(p) for p in VALID[encoding]]
    target = parts[which]
    for position, value in flips:
        if target:
            target[position % len(target)] = value
    if cut < 0 and len(target) > -cut:
        del target[cut:]
    elif cut > 0:
        target.extend(bytes(cut))
    assert_decodes_or_refuses([bytes(p) for p in parts])


@SETTINGS
@given(st.integers(1, 65535), st.integers(1, 65535))
def test_forged_jpeg_size_is_refused_before_decoding(width, height):
    """A JPEG whose frame header claims a huge size is refused from its header alone."""
    jpeg = bytearray(VALID["jpeg"][1])
    real = jpeg_size(np.frombuffer(bytes(jpeg), np.uint8))
    sof = next(
        i for i in range(2, len(jpeg) - 9) if jpeg[i] == 0xFF and jpeg[i + 1] in (0xC0, 0xC2)
    )
    jpeg[sof + 5 : sof + 7] = height.to_bytes(2, "big")
    jpeg[sof + 7 : sof + 9] = width.to_bytes(2, "big")
    assert jpeg_size(np.frombuffer(bytes(jpeg), np.uint8)) == (width, height)
    started = time.perf_counter()
    if (width, height) == real:
        _, image = decode_frame([VALID["jpeg"][0], bytes(jpeg)])
        assert image.shape[:2] == (height, width)
    else:
        with pytest.raises(WireFormatError, match=f"JPEG payload is {width}x{height}"):
            decode_frame([VALID["jpeg"][0], bytes(jpeg)])
    assert time.perf_counter() - started < 1.0


def test_deep_nesting_and_huge_numbers_are_wire_errors():
    for header in (
        b"[" * 50_000 + b"]" * 50_000,
        json.dumps({**VALID_HEADER, "capture_time": 10**400}).encode(),
        json.dumps({**VALID_HEADER, "capture_time": float("nan")}).encode(),
        b'{"version": 1, "index": ' + b"9" * 5000 + b"}",
    ):
        with pytest.raises(WireFormatError):
            decode_frame([header, VALID["rgb24"][1]])


def test_iterating_a_subscriber_skips_malformed_messages():
    """A garbage message on the wire is skipped and counted; the frame after it arrives."""
    context = zmq.Context.instance()
    publisher = context.socket(zmq.PUB)
    publisher.setsockopt(zmq.LINGER, 0)
    port = publisher.bind_to_random_port("tcp://127.0.0.1")
    header = json.loads(VALID["rgb24"][0])
    after = [json.dumps({**header, "index": 7}).encode(), VALID["rgb24"][1]]
    try:
        with Subscriber(f"tcp://127.0.0.1:{port}", receive_timeout_s=5) as sub:
            deadline = time.monotonic() + 5
            while time.monotonic() < deadline:  # slow joiner: send until one arrives
                publisher.send_multipart(VALID["rgb24"])
                if sub._poller.poll(100):
                    break
            publisher.send_multipart([b"not json", b"x"])
            publisher.send_multipart(after)  # one connection: delivered in order
            seen = []
            for frame in sub:
                seen.append(frame.header.index)
                if frame.header.index == 7:
                    break
            assert set(seen[:-1]) == {3} and sub.frames_rejected == 1
    finally:
        publisher.close()


def test_jpeg_from_the_encoder_reports_its_size():
    image = np.zeros((17, 29, 3), np.uint8)
    assert jpeg_size(np.frombuffer(encode_jpeg(image), np.uint8)) == (29, 17)
