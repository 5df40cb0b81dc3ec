"""The wire format of published frames: a two-part ZeroMQ message, never pickle.

Every frame is one multipart message::

    part 0: UTF-8 JSON object (the header, below)
    part 1: the payload: raw rgb24 bytes (height * width * 3, row-major, no padding)
            or one baseline JPEG image

Header fields (all present, in this order; unknown extra fields are ignored by readers of the
same major ``version`` so producers may add fields without breaking consumers):

=================  ===============  ==============================================================
field              JSON type        meaning
=================  ===============  ==============================================================
``version``        int              wire format version, currently 1
``index``          int              0-based frame index in the source (dropped frames count too)
``pts``            int or null      presentation timestamp in ``time_base`` units
``time_base``      [int, int]/null  seconds per pts tick as [numerator, denominator]
``capture_time``   float            Unix time (s) the source read the frame
``publish_time``   float            Unix time (s) the frame was sent; minus capture = latency
``width``          int              pixels
``height``         int              pixels
``encoding``       str              ``"rgb24"`` or ``"jpeg"``
``style_id``       str or null      the style (or mix) the frame was stylized with
``stream``         str              only from ``stylestream serve``: the stream's name
=================  ===============  ==============================================================

``stylestream serve`` (many streams on one socket) sends three parts ``[topic, header,
payload]``: the topic is the stream's name as UTF-8 (ZeroMQ subscriptions filter on it) and the
header carries the same name in ``stream``. ``stylestream live`` keeps the two-part form without
``stream``. :func:`split_topic` accepts both.

Decoding validates everything (types, ranges, payload size, JPEG dimensions -- read from the
JPEG's own header before it is decoded, so a forged huge JPEG costs nothing) and raises
:class:`WireFormatError`, and nothing else, on any mismatch, so a consumer never acts on a
malformed message (``tests/test_wire_fuzz.py`` checks this with random and mutated messages).
"""

from __future__ import annotations

import json
import math
import re
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from fractions import Fraction

import cv2
import numpy as np

from adaattn_video.errors import StylestreamError
from streamer.frames import Frame

WIRE_VERSION = 1
ENCODINGS = ("rgb24", "jpeg")
MAX_HEADER_BYTES = 64 * 1024  # a header is ~250 bytes; anything huge is not ours
MAX_SIDE = 16384
STREAM_NAME = re.compile(r"[A-Za-z0-9_-]{1,64}")


class WireFormatError(StylestreamError, ValueError):
    """A received message is not a valid stylestream frame message."""


@dataclass(frozen=True)
class FrameHeader:
    """The JSON header of one published frame (see the module docstring for the fields)."""

    index: int
    width: int
    height: int
    encoding: str
    capture_time: float
    publish_time: float
    pts: int | None = None
    time_base: tuple[int, int] | None = None
    style_id: str | None = None
    stream: str | None = None
    version: int = WIRE_VERSION

    def __post_init__(self) -> None:
        _check_int("index", self.index, minimum=0)
        _check_int("width", self.width, minimum=1, maximum=MAX_SIDE)
        _check_int("height", self.height, minimum=1, maximum=MAX_SIDE)
        _check_int("version", self.version, minimum=1)
        if self.version != WIRE_VERSION:
            raise WireFormatError(
                f"wire format version {self.version} is not supported (expected {WIRE_VERSION}); "
                "upgrade the older side"
            )
        if self.encoding not in ENCODINGS:
            raise WireFormatError(f"encoding must be one of {ENCODINGS}, got {self.encoding!r}")
        for name in ("capture_time", "publish_time"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise WireFormatError(f"{name} must be a number, got {value!r}")
            try:
                finite = math.isfinite(value)
            except OverflowError:  # an integer beyond any float
                finite = False
            if not finite:
                raise WireFormatError(f"{name} must be finite, got {str(value)[:40]}")
        if self.pts is not None:
            _check_int("pts", self.pts)
        if self.time_base is not None:
            tb = self.time_base
            if not (isinstance(tb, (list, tuple)) and len(tb) == 2):
                raise WireFormatError(f"time_base must be [numerator, denominator], got {tb!r}")
            _check_int("time_base numerator", tb[0], minimum=1)
            _check_int("time_base denominator", tb[1], minimum=1)
            object.__setattr__(self, "time_base", (int(tb[0]), int(tb[1])))
        if self.style_id is not None and not isinstance(self.style_id, str):
            raise WireFormatError(f"style_id must be a string or null, got {self.style_id!r}")
        if self.stream is not None:
            check_stream_name(self.stream)

    @property
    def latency_s(self) -> float:
        """Capture to publish, in seconds."""
        return self.publish_time - self.capture_time

    @property
    def time_base_fraction(self) -> Fraction | None:
        return None if self.time_base is None else Fraction(*self.time_base)

    @property
    def time_s(self) -> float | None:
        """Presentation time in seconds, or None without pts."""
        if self.pts is None or self.time_base is None:
            return None
        return float(self.pts * Fraction(*self.time_base))

    def to_json(self) -> bytes:
        fields = asdict(self)
        ordered = {"version": fields.pop("version")}
        ordered.update(
            (key, fields[key])
            for key in (
                "index",
                "pts",
                "time_base",
                "capture_time",
                "publish_time",
                "width",
                "height",
                "encoding",
                "style_id",
            )
        )
        if ordered["time_base"] is not None:
            ordered["time_base"] = list(ordered["time_base"])
        if fields["stream"] is not None:  # serve only: live's headers stay as they were
            ordered["stream"] = fields["stream"]
        return json.dumps(ordered, separators=(",", ":")).encode()

    @classmethod
    def from_json(cls, data: bytes) -> FrameHeader:
        if len(data) > MAX_HEADER_BYTES:
            raise WireFormatError(f"header of {len(data)} bytes is too large for a frame header")
        try:
            obj = json.loads(bytes(data).decode("utf-8"), parse_constant=_refuse_constant)
        except WireFormatError:  # NaN / Infinity
            raise
        except (ValueError, RecursionError) as err:  # bad UTF-8/JSON, 4300+ digit integers
            raise WireFormatError(f"frame header is not UTF-8 JSON: {str(err)[:200]}") from err
        if not isinstance(obj, dict):
            raise WireFormatError(f"frame header must be a JSON object, got {type(obj).__name__}")
        version = obj.get("version")
        if version != WIRE_VERSION:
            raise WireFormatError(
                f"wire format version {version!r} is not supported (expected {WIRE_VERSION})"
            )
        required = ("index", "width", "height", "encoding", "capture_time", "publish_time")
        missing = [key for key in required if key not in obj]
        if missing:
            raise WireFormatError(f"frame header lacks field(s) {missing}")
        return cls(
            index=obj["index"],
            width=obj["width"],
            height=obj["height"],
            encoding=obj["encoding"],
            capture_time=obj["capture_time"],
            publish_time=obj["publish_time"],
            pts=obj.get("pts"),
            time_base=obj.get("time_base"),
            style_id=obj.get("style_id"),
            stream=obj.get("stream"),
            version=version,
        )


def _refuse_constant(name: str) -> object:
    raise WireFormatError(f"frame header contains {name}: only finite numbers are valid")


def _check_int(name: str, value: object, minimum: int | None = None, maximum: int | None = None):
    if isinstance(value, bool) or not isinstance(value, int):
        raise WireFormatError(f"{name} must be an integer, got {value!r}")
    if minimum is not None and value < minimum:
        raise WireFormatError(f"{name} must be >= {minimum}, got {value}")
    if maximum is not None and value > maximum:
        raise WireFormatError(f"{name} must be <= {maximum}, got {value}")


def check_stream_name(name: object) -> str:
    """A stream name (also its ZeroMQ topic): 1-64 of ``A-Z a-z 0-9 _ -``."""
    if not isinstance(name, str) or not STREAM_NAME.fullmatch(name):
        raise WireFormatError(
            f"a stream name must be 1-64 characters of A-Z, a-z, 0-9, _ and -, got {name!r}"
        )
    return name


def check_encoding(encoding: str, jpeg_quality: int = 90) -> None:
    """Raise ValueError for an unknown encoding or a JPEG quality outside 1..100."""
    if encoding not in ENCODINGS:
        raise ValueError(f"encoding must be one of {ENCODINGS}, got {encoding!r}")
    if not 1 <= int(jpeg_quality) <= 100:
        raise ValueError(f"jpeg_quality must be in 1..100, got {jpeg_quality}")


def encode_jpeg(image: np.ndarray, quality: int = 90) -> bytes:
    """(H, W, 3) uint8 RGB -> JPEG bytes."""
    ok, buffer = cv2.imencode(
        ".jpg", cv2.cvtColor(image, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, int(quality)]
    )
    if not ok:
        raise ValueError(f"JPEG encoding failed for an image of shape {image.shape}")
    return buffer.tobytes()


# start-of-frame markers (baseline, progressive, lossless, ...): they carry the image size
_SOF_MARKERS = frozenset(
    {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}
)


def jpeg_size(buffer: np.ndarray) -> tuple[int, int]:
    """(width, height) from a JPEG's start-of-frame segment, read without decoding anything, so
    a forged 65535 x 65535 JPEG is refused before a decoder allocates for it.

    Raises:
        WireFormatError: no SOI marker, or no readable start-of-frame segment.
    """
    data = buffer.tobytes() if buffer.size <= 2**16 else buffer[: 2**16].tobytes()
    if len(data) < 4 or data[0] != 0xFF or data[1] != 0xD8:
        raise WireFormatError("payload is not a JPEG image (no SOI marker)")
    pos = 2
    while pos + 4 <= len(data):
        if data[pos] != 0xFF:
            raise WireFormatError("payload is not a JPEG image (broken marker structure)")
        marker = data[pos + 1]
        if marker == 0xFF:  # fill byte
            pos += 1
            continue
        if marker in (0x01, *range(0xD0, 0xD8)):  # standalone markers
            pos += 2
            continue
        length = (data[pos + 2] << 8) | data[pos + 3]
        if length < 2:
            raise WireFormatError("payload is not a JPEG image (bad segment length)")
        if marker in _SOF_MARKERS:
            if pos + 9 > len(data):
                break
            height = (data[pos + 5] << 8) | data[pos + 6]
            width = (data[pos + 7] << 8) | data[pos + 8]
            return width, height
        if marker in (0xD9, 0xDA):  # end of image / start of scan before any frame header
            break
        pos += 2 + length
    raise WireFormatError("payload is not a JPEG image (no frame header in its first 64 KiB)")


def decode_jpeg(
    data: bytes | memoryview, expected_size: tuple[int, int] | None = None
) -> np.ndarray:
    """JPEG bytes -> (H, W, 3) uint8 RGB; WireFormatError when they are not a JPEG image, or
    when ``expected_size`` (width, height) is given and the JPEG's own header says otherwise
    (checked before decoding)."""
    buffer = np.frombuffer(data, dtype=np.uint8)
    width, height = jpeg_size(buffer)
    if expected_size is not None and (width, height) != tuple(expected_size):
        raise WireFormatError(
            f"JPEG payload is {width}x{height}, header says {expected_size[0]}x{expected_size[1]}"
        )
    try:
        image = cv2.imdecode(buffer, cv2.IMREAD_COLOR)
    except cv2.error as err:
        raise WireFormatError(f"payload is not a decodable JPEG image: {err}") from err
    if image is None or image.ndim != 3 or image.shape[2] != 3:
        raise WireFormatError("payload is not a decodable JPEG image")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def encode_frame(
    frame: Frame,
    *,
    encoding: str = "jpeg",
    jpeg_quality: int = 90,
    style_id: str | None = None,
    publish_time: float | None = None,
    stream: str | None = None,
) -> tuple[FrameHeader, list[bytes | memoryview]]:
    """Frame -> (header, [header JSON, payload]) ready for ``socket.send_multipart``; with
    ``stream`` (``serve``) the header names it and the topic part comes first:
    ``[topic, header JSON, payload]``.

    rgb24 payloads are a zero-copy view of ``frame.image`` (made contiguous if needed).
    ``publish_time`` defaults to now, taken after the payload is encoded.
    """
    image = frame.image
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(f"expected an (H, W, 3) uint8 frame, got {image.shape} {image.dtype}")
    check_encoding(encoding, jpeg_quality)
    if encoding == "jpeg":
        payload: bytes | memoryview = encode_jpeg(image, jpeg_quality)
    else:
        payload = memoryview(np.ascontiguousarray(image)).cast("B")
    time_base = frame.time_base
    header = FrameHeader(
        index=int(frame.index),
        width=int(image.shape[1]),
        height=int(image.shape[0]),
        encoding=encoding,
        capture_time=float(frame.capture_time_s),
        publish_time=time.time() if publish_time is None else float(publish_time),
        pts=None if frame.pts is None else int(frame.pts),
        time_base=None
        if time_base is None
        else (Fraction(time_base).numerator, Fraction(time_base).denominator),
        style_id=style_id,
        stream=stream,
    )
    if stream is not None:
        return header, [stream.encode(), header.to_json(), payload]
    return header, [header.to_json(), payload]


def split_topic(
    parts: Sequence[bytes | memoryview],
) -> tuple[str | None, Sequence[bytes | memoryview]]:
    """``[topic, header, payload]`` (serve) -> (stream name, [header, payload]); a two-part
    message (live) -> (None, parts). The topic must be a valid stream name."""
    if len(parts) != 3:
        return None, parts
    try:
        topic = bytes(parts[0]).decode("utf-8")
    except UnicodeDecodeError as err:
        raise WireFormatError("message topic is not UTF-8") from err
    return check_stream_name(topic), parts[1:]


def decode_header(parts: Sequence[bytes | memoryview]) -> FrameHeader:
    """Validate the message shape and parse its header without touching the payload."""
    if len(parts) != 2:
        raise WireFormatError(
            f"expected a 2-part message [header, payload], got {len(parts)} part(s)"
        )
    if not isinstance(parts[0], (bytes, bytearray, memoryview)):
        raise WireFormatError(f"header must be bytes, got {type(parts[0]).__name__}")
    return FrameHeader.from_json(bytes(parts[0]))


def decode_frame(parts: Sequence[bytes | memoryview]) -> tuple[FrameHeader, np.ndarray]:
    """[header JSON, payload] -> (header, (H, W, 3) uint8 RGB image), fully validated."""
    header = decode_header(parts)
    payload = parts[1]
    if not isinstance(payload, (bytes, bytearray, memoryview)):
        raise WireFormatError(f"payload must be bytes, got {type(payload).__name__}")
    if isinstance(payload, memoryview):
        try:
            payload = payload.cast("B")
        except TypeError as err:
            raise WireFormatError(f"payload is not a flat byte buffer: {err}") from err
    if header.encoding == "rgb24":
        expected = header.width * header.height * 3
        if len(payload) != expected:
            raise WireFormatError(
                f"rgb24 payload has {len(payload)} bytes, expected {expected} "
                f"({header.width}x{header.height}x3)"
            )
        image = np.frombuffer(payload, dtype=np.uint8).reshape(header.height, header.width, 3)
    else:
        image = decode_jpeg(payload, (header.width, header.height))
        if image.shape[:2] != (header.height, header.width):
            raise WireFormatError(
                f"JPEG payload is {image.shape[1]}x{image.shape[0]}, header says "
                f"{header.width}x{header.height}"
            )
    return header, image
