"""The wire format: round trips, and every malformed message rejected with a clear error."""

from __future__ import annotations

import json
from fractions import Fraction

import numpy as np
import pytest

from streamer.frames import Frame
from streamer.zeromq.wire import (
    WIRE_VERSION,
    FrameHeader,
    WireFormatError,
    decode_frame,
    encode_frame,
    encode_jpeg,
)


def _frame(index: int = 7, height: int = 48, width: int = 64) -> Frame:
    # Smooth content: JPEG error on it is small and predictable (noise would not be).
    y, x = np.mgrid[0:height, 0:width]
    image = np.stack([x * 4 % 256, y * 5 % 256, (x + y) * 2 % 256], axis=-1).astype(np.uint8)
    image = np.ascontiguousarray(image)
    return Frame(
        index=index,
        image=image,
        pts=3003 * index,
        time_base=Fraction(1, 90000),
        capture_time_s=1_700_000_000.25,
    )


def test_rgb24_round_trip_is_exact_and_header_complete() -> None:
    frame = _frame()
    header, parts = encode_frame(
        frame, encoding="rgb24", style_id="udnie", publish_time=1_700_000_000.5
    )
    assert len(parts) == 2
    raw = json.loads(bytes(parts[0]))
    assert list(raw) == [
        "version",
        "index",
        "pts",
        "time_base",
        "capture_time",
        "publish_time",
        "width",
        "height",
        "encoding",
        "style_id",
    ]
    assert raw["version"] == WIRE_VERSION
    assert raw["time_base"] == [1, 90000]
    decoded, image = decode_frame([bytes(p) for p in parts])
    assert decoded == header
    assert decoded.index == 7 and decoded.pts == 7 * 3003
    assert decoded.time_base_fraction == Fraction(1, 90000)
    assert decoded.width == 64 and decoded.height == 48
    assert decoded.style_id == "udnie"
    assert decoded.latency_s == pytest.approx(0.25)
    np.testing.assert_array_equal(image, frame.image)
    assert decoded.pts == frame.pts and decoded.time_base_fraction == frame.time_base
    assert decoded.capture_time == frame.capture_time_s


def test_jpeg_round_trip_within_lossy_tolerance() -> None:
    frame = _frame()
    _, parts = encode_frame(frame, encoding="jpeg", jpeg_quality=95)
    assert bytes(parts[1][:2]) == b"\xff\xd8"
    assert len(parts[1]) < frame.image.nbytes  # compression happened
    header, image = decode_frame(parts)
    assert header.encoding == "jpeg"
    assert image.shape == frame.image.shape and image.dtype == np.uint8
    # q95 on a smooth gradient: mean abs error a few levels (chroma subsampling dominates).
    assert np.abs(image.astype(int) - frame.image.astype(int)).mean() < 6


def test_missing_pts_and_time_base_are_null() -> None:
    frame = Frame(index=0, image=np.zeros((16, 16, 3), np.uint8), capture_time_s=1.0)
    header, parts = encode_frame(frame, encoding="rgb24")
    raw = json.loads(bytes(parts[0]))
    assert raw["pts"] is None and raw["time_base"] is None and raw["style_id"] is None
    assert decode_frame(parts)[0].time_s is None
    assert header.publish_time >= 1.0


def _message(**changes: object) -> list[bytes]:
    _, parts = encode_frame(_frame(), encoding="rgb24")
    header = json.loads(bytes(parts[0]))
    header.update(changes)
    return [json.dumps(header).encode(), bytes(parts[1])]


@pytest.mark.parametrize(
    ("parts", "message"),
    [
        ([b"{}"], "2-part"),
        ([b"{}", b"", b""], "2-part"),
        ([b"\xff\xfe", b""], "not UTF-8 JSON"),
        ([b"[1, 2]", b""], "JSON object"),
        ([b'{"version": 1}', b""], "lacks field"),
        (_message(version=2), "version 2 is not supported"),
        (_message(width=0), "width must be >= 1"),
        (_message(height="48"), "height must be an integer"),
        (_message(index=-1), "index must be >= 0"),
        (_message(encoding="png"), "encoding must be one of"),
        (_message(pts=1.5), "pts must be an integer"),
        (_message(time_base=[1]), "time_base must be"),
        (_message(time_base=[1, 0]), "denominator must be >= 1"),
        (_message(capture_time="now"), "capture_time must be a number"),
        (_message(style_id=3), "style_id must be a string"),
        (_message(width=65), "expected 9360"),
        (_message(encoding="jpeg"), "not a JPEG"),
    ],
)
def test_malformed_messages_are_rejected(parts: list[bytes], message: str) -> None:
    with pytest.raises(WireFormatError, match=message):
        decode_frame(parts)


def test_jpeg_whose_size_disagrees_with_header_is_rejected() -> None:
    jpeg = encode_jpeg(np.zeros((32, 32, 3), np.uint8))
    header = FrameHeader(
        index=0, width=64, height=48, encoding="jpeg", capture_time=0.0, publish_time=0.0
    )
    with pytest.raises(WireFormatError, match="header says 64x48"):
        decode_frame([header.to_json(), jpeg])


def test_pickle_is_never_accepted() -> None:
    import pickle

    payload = pickle.dumps({"version": 1})
    with pytest.raises(WireFormatError):
        decode_frame([payload, b""])


def test_bad_encoding_options_are_value_errors() -> None:
    with pytest.raises(ValueError, match="encoding must be one of"):
        encode_frame(_frame(), encoding="h264")
    with pytest.raises(ValueError, match="jpeg_quality must be in 1"):
        encode_frame(_frame(), encoding="jpeg", jpeg_quality=0)
