"""Sources: PyAV files (CFR, VFR, ranges, damage), lavfi, image sequences, the INPUT syntax."""

from __future__ import annotations

import time
from fractions import Fraction

import numpy as np
import pytest
from helpers.media import pattern_frame, write_clip, write_image_folder

from adaattn_video.errors import StylestreamError
from streamer.frames import FrameSource
from streamer.sources import (
    InputDamagedError,
    LiveOptions,
    SourceError,
    SourceNotFoundError,
    open_source,
)
from streamer.sources.file import FileSource, FileSourceConfig
from streamer.sources.images import ImageSequenceSource, list_images


def read_all(uri: str, **options) -> list:
    with open_source(uri, **options) as source:
        return list(source)


# -- files ---------------------------------------------------------------------------------
def test_file_frames_keep_pts_time_base_and_content(clip_with_audio):
    info = clip_with_audio
    with open_source(str(info.path)) as source:
        assert isinstance(source, FileSource) and not source.live
        assert source.expected_frames == len(info.pts)
        assert (source.width, source.height) == (64, 64)
        assert source.audio_path == str(info.path)
        frames = list(source)
    assert [f.index for f in frames] == list(range(len(info.pts)))
    assert [f.time_s for f in frames] == [float(t) for t in info.times]
    for frame, original in zip(frames, info.frames, strict=True):
        assert frame.image.shape == (64, 64, 3) and frame.image.dtype == np.uint8
        assert frame.image.flags.c_contiguous
        # lossy H.264 at libx264's default quality on a smooth pattern: small mean error
        assert np.abs(frame.image.astype(int) - original).mean() < 8


def test_variable_frame_rate_is_kept(tmp_path):
    info = write_clip(tmp_path / "vfr.mp4", frames=12, vfr=True, audio=False)
    frames = read_all(str(info.path))
    assert [f.pts * f.time_base for f in frames] == info.times
    gaps = {b - a for a, b in zip(info.pts, info.pts[1:], strict=False)}
    assert len(gaps) > 1  # really variable


def test_start_and_duration_select_by_time_and_rebase_pts(tmp_path):
    info = write_clip(tmp_path / "clip.mp4", frames=48, fps=24, audio=False)
    frames = read_all(str(info.path), start_s=0.5, duration_s=1.0)
    assert len(frames) == 24  # frames presented in [0.5 s, 1.5 s)
    assert frames[0].time_s == 0.0 and frames[-1].time_s == pytest.approx(23 / 24)
    # the first frame is the input frame at 0.5 s (frame 12)
    assert np.abs(frames[0].image.astype(int) - info.frames[12]).mean() < 8
    with open_source(str(info.path), start_s=0.5, duration_s=1.0) as source:
        assert source.expected_frames == 24


def test_lavfi_source():
    frames = read_all("lavfi:testsrc2=size=64x48:rate=10:duration=1")
    assert len(frames) == 10
    assert frames[0].image.shape == (48, 64, 3)
    assert [f.pts for f in frames] == list(range(10))
    assert frames[0].time_base == Fraction(1, 10)


def test_lavfi_source_with_duration_option():
    frames = read_all("lavfi:testsrc2=size=32x32:rate=20", duration_s=0.5)
    assert len(frames) == 10


def test_realtime_paces_frames_and_is_live():
    with open_source(
        "lavfi:testsrc2=size=32x32:rate=50:duration=0.3", live=LiveOptions(realtime=True)
    ) as source:
        assert source.live
        started = time.monotonic()
        frames = list(source)
    assert len(frames) == 15
    assert time.monotonic() - started >= 14 / 50 * 0.9  # paced at 50 fps, not as fast as possible


def test_missing_file_is_a_clear_error(tmp_path):
    with pytest.raises(SourceNotFoundError, match="does not exist") as info:
        read_all(str(tmp_path / "nope.mp4"))
    assert isinstance(info.value, FileNotFoundError) and isinstance(info.value, StylestreamError)


def test_not_a_video_is_a_clear_error(tmp_path):
    path = tmp_path / "notes.mp4"
    path.write_text("this is not a video\n" * 20)
    with pytest.raises(SourceError, match="cannot open input"):
        read_all(str(path))


def test_bad_lavfi_graph_is_a_clear_error():
    with pytest.raises(SourceError, match="lavfi graph"):
        read_all("lavfi:nosuchfilter=1")


def test_bad_range_values_are_rejected():
    with pytest.raises(SourceError, match="start"):
        FileSourceConfig("x.mp4", start_s=-1)
    with pytest.raises(SourceError, match="duration"):
        FileSourceConfig("x.mp4", duration_s=0)


def test_truncated_mp4_yields_frames_before_the_damage_then_a_clear_error(tmp_path):
    info = write_clip(
        tmp_path / "clip.mp4", frames=48, audio=False, container_options={"movflags": "faststart"}
    )
    data = info.path.read_bytes()
    damaged = tmp_path / "damaged.mp4"
    damaged.write_bytes(data[: len(data) * 6 // 10])
    frames = []
    with (
        pytest.raises(InputDamagedError, match="truncated") as error,
        open_source(str(damaged)) as source,
    ):
        frames.extend(source)
    assert 10 < len(frames) < 48
    assert error.value.frames_read == len(frames)
    assert [f.time_s for f in frames] == [float(t) for t in info.times[: len(frames)]]


@pytest.mark.parametrize("suffix", [".mkv", ".ts"])
def test_truncated_matroska_and_mpegts_yield_frames_then_a_clear_error(tmp_path, suffix):
    """A cut Matroska or MPEG-TS file decodes up to the cut without an FFmpeg error: Matroska
    is caught by its track's DURATION tag, MPEG-TS by a size that is no whole number of
    188-byte packets. The frames before the cut come first, exactly as written."""
    info = write_clip(tmp_path / f"clip{suffix}", frames=48, audio=False)
    data = info.path.read_bytes()
    assert suffix != ".ts" or len(data) % 188 == 0  # a whole TS file: no false alarm
    assert len(read_all(str(info.path))) == 48
    damaged = tmp_path / f"damaged{suffix}"
    damaged.write_bytes(data[: len(data) * 6 // 10 + 7])
    frames = []
    with (
        pytest.raises(InputDamagedError, match="truncated") as error,
        open_source(str(damaged)) as source,
    ):
        frames.extend(source)
    assert 10 < len(frames) < 48 and error.value.frames_read == len(frames)
    assert [f.index for f in frames] == list(range(len(frames)))


def test_start_past_the_end_is_an_error_at_open(tmp_path):
    info = write_clip(tmp_path / "clip.mp4", frames=48, fps=24, audio=False)  # 2.0 s
    with pytest.raises(SourceError, match=r"past the end .* ends at 2\.0 s"):
        open_source(str(info.path), start_s=60).open()
    with open_source(str(info.path), start_s=1.5) as source:  # inside: fine
        assert len(list(source)) == 12


# -- image sequences -----------------------------------------------------------------------
def test_image_folder_in_natural_order_with_exact_pixels(tmp_path):
    images = write_image_folder(tmp_path / "frames", frames=12, name="f{}.png")
    (tmp_path / "frames" / "notes.txt").write_text("not an image")
    with open_source(str(tmp_path / "frames"), fps=12.5) as source:
        assert isinstance(source, ImageSequenceSource)
        assert source.expected_frames == 12
        frames = list(source)
    # f2.png comes before f10.png (natural order), PNG is lossless
    for frame, image in zip(frames, images, strict=True):
        np.testing.assert_array_equal(frame.image, image)
    assert frames[-1].pts == 11 and frames[-1].time_base == Fraction(2, 25)


def test_printf_pattern_and_glob(tmp_path):
    write_image_folder(tmp_path, frames=5, name="shot_{:04d}.png")
    write_image_folder(tmp_path, frames=2, name="other_{:04d}.png")
    assert len(list_images(str(tmp_path / "shot_%04d.png"))) == 5
    assert len(list_images(str(tmp_path / "shot_*.png"))) == 5
    assert len(list_images(str(tmp_path))) == 7
    frames = read_all(str(tmp_path / "shot_%04d.png"), start_s=2 / 30, duration_s=2 / 30)
    assert [f.pts for f in frames] == [0, 1]
    np.testing.assert_array_equal(frames[0].image, pattern_frame(2, 48, 64))


def test_empty_or_missing_image_folder(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(SourceNotFoundError, match="no images"):
        read_all(str(tmp_path / "empty"))
    with pytest.raises(SourceNotFoundError, match="does not exist"):
        read_all(str(tmp_path / "missing" / "%04d.png"))


def test_corrupt_image_in_sequence_after_good_ones(tmp_path):
    write_image_folder(tmp_path, frames=4, name="{:02d}.png")
    (tmp_path / "02.png").write_bytes(b"broken")
    frames = []
    with (
        pytest.raises(InputDamagedError, match="could not be decoded") as error,
        open_source(str(tmp_path)) as source,
    ):
        frames.extend(source)
    assert len(frames) == 2 and error.value.frames_read == 2


def test_fps_is_rejected_for_video_files(clip_with_audio):
    with pytest.raises(SourceError, match="image sequences only"):
        open_source(str(clip_with_audio.path), fps=10)


# -- one opener for every INPUT -----------------------------------------------------------
def test_live_inputs_reject_file_options_and_bad_live_options():
    with pytest.raises(SourceError, match="--start does not apply"):
        open_source("rtsp://127.0.0.1:9/live", start_s=1.0)
    with pytest.raises(SourceError, match="--duration does not apply"):
        open_source("0", duration_s=1.0)
    with pytest.raises(SourceError, match="transport"):
        LiveOptions(transport="quic")
    with pytest.raises(SourceError, match="capture size"):
        LiveOptions(capture_size=(8, 8))


def test_live_options_reach_the_network_source():
    from streamer.sources.network import NetworkSource

    source = open_source(
        "rtsp://127.0.0.1:9/live",
        live=LiveOptions(transport="udp", read_timeout_s=2.5, ffmpeg_options={"x": 1}),
    )
    assert isinstance(source, NetworkSource) and source.live
    assert source.config.transport == "udp" and source.config.read_timeout_s == 2.5
    assert source.config.av_options()["x"] == "1"


def test_every_source_is_a_frame_source_with_info_and_counters(clip_with_audio):
    with open_source(str(clip_with_audio.path)) as source:
        assert isinstance(source, FrameSource) and not source.live
        info = source.info()
        frames = list(source)
        assert info.expected_frames == len(frames) and info.audio_path == str(clip_with_audio.path)
        assert (info.height, info.width) == frames[0].image.shape[:2]
        assert source.counters().read == len(frames) and source.counters().dropped == 0


def test_a_new_source_or_sink_must_implement_the_whole_contract():
    from streamer.frames import FrameSink

    class HalfSource(FrameSource):
        def __iter__(self):
            yield from ()

    class HalfSink(FrameSink):
        def write(self, frame):
            pass

    with pytest.raises(TypeError, match="abstract") as error:
        HalfSource()
    for name in ("close", "counters", "info", "live", "open"):
        assert name in str(error.value)
    with pytest.raises(TypeError, match="close"):
        HalfSink()
