"""Webcam input through OpenCV's VideoCapture, with a grabber thread that keeps only the newest
frame (a camera's driver queues several; reading them late would add latency).

``device`` is a camera index (``"0"``), a device node (``"/dev/video0"``), or anything else
VideoCapture opens (a file or an MJPEG/RTSP URL: the same code path, which is how the tests
exercise it on a machine without a camera). A camera that is not there is one clear error
naming it and the cameras that are.
"""

from __future__ import annotations

import glob
import logging
import re
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from adaattn_video.errors import StylestreamError
from streamer.frames import Frame, FrameSource, SourceCounters, SourceInfo
from streamer.queues import END
from streamer.sources import is_camera
from streamer.sources.reader_thread import newest_frames, run_producer

log = logging.getLogger(__name__)

TIME_BASE = Fraction(1, 1000)  # camera frames are timestamped in wall-clock milliseconds
_DEVICE_NODE = re.compile(r"^/dev/video(\d+)$")
__all__ = ["CameraConfig", "CameraError", "CameraNotFoundError", "CameraSource", "is_camera"]


class CameraNotFoundError(StylestreamError, FileNotFoundError):
    """The requested camera does not exist or cannot be opened."""


class CameraError(StylestreamError, OSError):
    """An opened camera stopped delivering frames."""


def available_cameras() -> list[str]:
    """Video device nodes on this machine (Linux), e.g. ``["/dev/video0"]``."""
    return sorted(glob.glob("/dev/video*"), key=lambda p: (len(p), p))


@dataclass(frozen=True)
class CameraConfig:
    """Which camera, and what to ask it for.

    Attributes:
        device: ``"0"`` / ``"/dev/video0"`` (or a file/URL VideoCapture opens).
        width, height, fps: requested capture format (None = the camera's default). Cameras
            pick the nearest mode they support; the actual one is logged.
        fourcc: pixel format to request, e.g. ``"MJPG"`` (many USB cameras need it for HD at
            30 fps), or None.
        open_timeout_s: longest wait for the first frame.
        read_timeout_s: a camera that delivers nothing for this long has stopped (an error).
        max_queue_frames: newest frames kept for the consumer (1 = lowest latency).
    """

    device: str
    width: int | None = None
    height: int | None = None
    fps: float | None = None
    fourcc: str | None = None
    open_timeout_s: float = 10.0
    read_timeout_s: float = 5.0
    max_queue_frames: int = 1

    def __post_init__(self) -> None:
        object.__setattr__(self, "device", str(self.device))
        for name in ("width", "height"):
            value = getattr(self, name)
            if value is not None and value < 16:
                raise ValueError(f"{name} must be >= 16 pixels, got {value}")
        if self.fps is not None and self.fps <= 0:
            raise ValueError(f"fps must be > 0, got {self.fps}")
        if self.fourcc is not None and len(self.fourcc) != 4:
            raise ValueError(f"fourcc must be 4 characters like 'MJPG', got {self.fourcc!r}")
        for name in ("open_timeout_s", "read_timeout_s"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be > 0, got {getattr(self, name)}")
        if self.max_queue_frames < 1:
            raise ValueError(f"max_queue_frames must be >= 1, got {self.max_queue_frames}")

    @property
    def is_device(self) -> bool:
        return is_camera(self.device)

    @property
    def device_node(self) -> str | None:
        """``/dev/videoN`` for an index or node, None for files/URLs."""
        if self.device.isdigit():
            return f"/dev/video{int(self.device)}"
        return self.device if _DEVICE_NODE.match(self.device) else None


class CameraSource(FrameSource):
    """A webcam as a live :class:`~streamer.frames.FrameSource`; use it in a ``with`` block."""

    def __init__(self, config: CameraConfig | str, **options: Any) -> None:
        if isinstance(config, str):
            config = CameraConfig(config, **options)
        elif options:
            raise TypeError("give either a CameraConfig or a device with options")
        self.config = config
        self.width: int | None = None
        self.height: int | None = None
        self.fps: float | None = None
        self.frames_read = 0
        self._capture: cv2.VideoCapture | None = None
        self._buffer = newest_frames(config.max_queue_frames)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._start_wall = 0.0

    @property
    def live(self) -> bool:
        return True

    def info(self) -> SourceInfo:
        rate = Fraction(self.fps).limit_denominator(1000) if self.fps else None
        return SourceInfo(
            frame_rate=rate, width=self.width, height=self.height, time_base=TIME_BASE
        )

    def counters(self) -> SourceCounters:
        return SourceCounters(read=self.frames_read, dropped=self._buffer.dropped)

    def _check_device_exists(self) -> None:
        node = self.config.device_node
        if node is None or not sys.platform.startswith("linux") or Path(node).exists():
            return
        found = available_cameras()
        raise CameraNotFoundError(
            f"camera {self.config.device} not found: {node} does not exist; "
            + (
                f"cameras on this machine: {', '.join(found)}"
                if found
                else "this machine has no video devices (is the camera plugged in, and is this "
                "a container without /dev/video* passed through?)"
            )
        )

    def _open_capture(self) -> cv2.VideoCapture:
        config = self.config
        self._check_device_exists()
        if config.device.isdigit():
            capture = cv2.VideoCapture(int(config.device))
        else:
            capture = cv2.VideoCapture(config.device)
        if not capture.isOpened():
            capture.release()
            what = "camera" if config.is_device else "video input"
            raise CameraNotFoundError(
                f"cannot open {what} {config.device}: OpenCV's VideoCapture refused it "
                "(in use by another program? no permission for the device?)"
            )
        if config.fourcc is not None:
            capture.set(cv2.CAP_PROP_FOURCC, cv2.VideoWriter_fourcc(*config.fourcc))
        if config.width is not None:
            capture.set(cv2.CAP_PROP_FRAME_WIDTH, config.width)
        if config.height is not None:
            capture.set(cv2.CAP_PROP_FRAME_HEIGHT, config.height)
        if config.fps is not None:
            capture.set(cv2.CAP_PROP_FPS, config.fps)
        if config.is_device:
            capture.set(cv2.CAP_PROP_BUFFERSIZE, 1)  # fewer driver buffers = fresher frames
        return capture

    def open(self) -> None:
        if self._thread is not None:  # already open (opening twice is harmless)
            return
        started = time.monotonic()
        capture = self._open_capture()
        self._capture = capture
        config = self.config
        # The first frame tells the real size (cameras pick the nearest mode they support).
        first = _read_with_timeout(capture, config.open_timeout_s)
        if first is None:
            # The read may still be blocked inside the driver: leave the capture alone rather
            # than release it under a read (some backends crash on that).
            self._capture = None
            raise CameraNotFoundError(
                f"{config.device} opened but gave no frame within {config.open_timeout_s:.1f} s"
            )
        self.height, self.width = first.shape[:2]
        fps = capture.get(cv2.CAP_PROP_FPS)
        self.fps = fps if fps and fps > 0 else None
        requested = (config.width, config.height)
        if requested != (None, None) and requested != (self.width, self.height):
            log.warning(
                "%s delivers %dx%d, not the requested %sx%s",
                config.device,
                self.width,
                self.height,
                config.width or "?",
                config.height or "?",
            )
        log.info(
            "opened %s: %dx%d at %s fps in %.2f s",
            config.device,
            self.width,
            self.height,
            f"{self.fps:.1f}" if self.fps else "?",
            time.monotonic() - started,
        )
        self._start_wall = time.time()
        self._deliver(first)
        self._thread = run_producer(f"grab {config.device}", self._grab_forever, self._buffer)

    def _deliver(self, bgr: np.ndarray) -> None:
        self._buffer.put((self.frames_read, bgr, time.time()))
        self.frames_read += 1

    def _grab_forever(self) -> None:
        capture = self._capture
        assert capture is not None
        while not self._stop.is_set():
            ok, bgr = capture.read()
            if self._stop.is_set():
                return
            if not ok or bgr is None:
                if self.config.is_device:
                    raise CameraError(
                        f"camera {self.config.device} stopped delivering frames "
                        "(unplugged, or taken by another program?)"
                    )
                return  # end of a file or stream
            self._deliver(bgr)

    def interrupt(self) -> None:
        """Make a waiting iterator return soon (the pipeline calls this when it stops)."""
        self._stop.set()

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=self.config.read_timeout_s + 1)
            if self._thread.is_alive():
                log.warning("grabber of %s did not stop in time", self.config.device)
                return  # releasing under a read in progress can crash some backends
            self._thread = None
        if self._capture is not None:
            self._capture.release()
            self._capture = None

    def __iter__(self) -> Iterator[Frame]:
        if self._capture is None:
            raise RuntimeError("use the source in a `with` block before iterating it")
        last_pts = -1
        waited_since = time.monotonic()
        while not self._stop.is_set():
            item = self._buffer.get(timeout_s=0.1)
            if item is END:
                return
            if item is None:
                if (
                    self.config.is_device
                    and time.monotonic() - waited_since > self.config.read_timeout_s
                ):
                    raise CameraError(
                        f"camera {self.config.device} gave no frame for "
                        f"{self.config.read_timeout_s:.1f} s"
                    )
                continue
            waited_since = time.monotonic()
            index, bgr, captured = item
            pts = max(round((captured - self._start_wall) / TIME_BASE), last_pts + 1)
            last_pts = pts
            yield Frame(
                index=index,
                image=cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB),
                pts=pts,
                time_base=TIME_BASE,
                capture_time_s=captured,
            )


def _read_with_timeout(capture: cv2.VideoCapture, timeout_s: float) -> np.ndarray | None:
    """The first frame, or None when none comes within ``timeout_s`` (reads can hang)."""
    result: list[np.ndarray | None] = [None]

    def read() -> None:
        ok, frame = capture.read()
        result[0] = frame if ok else None

    reader = threading.Thread(target=read, name="camera-first-frame", daemon=True)
    reader.start()
    reader.join(timeout_s)
    return None if reader.is_alive() else result[0]
