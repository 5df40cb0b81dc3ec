"""The webcam source. No camera exists on CI machines (no /dev/video*, no kernel modules), so
the same OpenCV VideoCapture code path (grabber thread, newest-frame buffer, BGR->RGB, timing)
runs on a video FILE; the missing-device error is tested for real."""

from __future__ import annotations

import itertools
import time
from pathlib import Path

import av
import numpy as np
import pytest

from streamer.sources.camera import (
    TIME_BASE,
    CameraConfig,
    CameraNotFoundError,
    CameraSource,
    available_cameras,
    is_camera,
)

FRAMES = 30


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """30 frames, 48x64: a pure red bar on the left, a blue one on the right (tells RGB from BGR)."""
    path = tmp_path_factory.mktemp("camera") / "clip.mp4"
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=30)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv444p"
        stream.options = {"crf": "0"}  # lossless: colours checkable exactly-ish
        for i in range(FRAMES):
            image = np.full((48, 64, 3), 5 * i, np.uint8)
            image[:, :16] = (255, 0, 0)
            image[:, 48:] = (0, 0, 255)
            for packet in stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def test_frames_through_videocapture_are_rgb_newest_first_and_drops_counted(clip: Path) -> None:
    with CameraSource(CameraConfig(str(clip))) as source:
        assert source.live is True
        assert (source.info().width, source.info().height) == (64, 48)
        frames = []
        for frame in source:
            frames.append(frame)
            time.sleep(0.05)  # a consumer slower than the grabber
        counters = source.counters()
        dropped, read = counters.dropped, counters.read
    assert read == FRAMES
    # Every frame read was either delivered or dropped (counted); the slow consumer skipped some.
    assert len(frames) + dropped == FRAMES
    assert dropped > 0
    assert frames[-1].index == FRAMES - 1  # the newest frame is always delivered
    for frame in frames:
        assert frame.image.shape == (48, 64, 3) and frame.image.dtype == np.uint8
        assert frame.time_base == TIME_BASE
        # OpenCV reads BGR; the source hands out RGB (red stays red).
        np.testing.assert_allclose(frame.image[:, :16].mean(axis=(0, 1)), (255, 0, 0), atol=3)
        np.testing.assert_allclose(frame.image[:, 48:].mean(axis=(0, 1)), (0, 0, 255), atol=3)
    assert [f.index for f in frames] == sorted({f.index for f in frames})
    assert all(b.pts > a.pts for a, b in itertools.pairwise(frames))
    assert all(b.capture_time_s >= a.capture_time_s for a, b in itertools.pairwise(frames))


def test_a_fast_consumer_gets_every_frame_in_order(clip: Path) -> None:
    with CameraSource(CameraConfig(str(clip), max_queue_frames=FRAMES)) as source:
        frames = list(source)
    assert [f.index for f in frames] == list(range(FRAMES))
    # brightness rises by 5 per frame in the clip: the order is the clip's
    centre = [int(f.image[:, 16:48].mean()) for f in frames]
    assert centre == sorted(centre) and centre[-1] - centre[0] >= 5 * (FRAMES - 2)


def test_missing_camera_is_one_clear_error_naming_it() -> None:
    missing = next(str(i) for i in range(64) if not Path(f"/dev/video{i}").exists())
    with pytest.raises(
        CameraNotFoundError, match=f"camera {missing} not found: /dev/video{missing}"
    ):
        CameraSource(CameraConfig(missing)).__enter__()
    with pytest.raises(CameraNotFoundError, match=f"/dev/video{missing} does not exist"):
        CameraSource(CameraConfig(f"/dev/video{missing}")).__enter__()
    if not available_cameras():
        with pytest.raises(CameraNotFoundError, match="this machine has no video devices"):
            CameraSource(CameraConfig(missing)).__enter__()


def test_a_file_that_is_not_video_cannot_be_opened(tmp_path: Path) -> None:
    bogus = tmp_path / "notes.txt"
    bogus.write_text("not a video")
    with pytest.raises(CameraNotFoundError, match="cannot open video input"):
        CameraSource(CameraConfig(str(bogus))).__enter__()


def test_camera_detection_and_validation() -> None:
    assert is_camera("0") and is_camera("12") and is_camera("/dev/video2")
    assert not is_camera("clip.mp4") and not is_camera("rtsp://x/0") and not is_camera("/dev/null")
    with pytest.raises(ValueError, match="width must be >= 16"):
        CameraConfig("0", width=8)
    with pytest.raises(ValueError, match="fourcc must be 4 characters"):
        CameraConfig("0", fourcc="MJPEG")
    with pytest.raises(ValueError, match="fps must be > 0"):
        CameraConfig("0", fps=0)
