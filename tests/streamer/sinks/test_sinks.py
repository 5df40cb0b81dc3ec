"""Sinks: MP4 timing (exact, VFR, B-frames, AAC priming), audio copy, crash safety, sizes,
errors; PNG sequences. Frames go from a real source straight into a real sink (no model)."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest
from helpers.media import (
    audio_packets,
    decodable_frame_times,
    decoded_frames,
    frame_arrays,
    frame_times,
    has_audio,
    pattern_frame,
    video_duration,
    video_size,
    write_clip,
)

from streamer.frames import Frame
from streamer.sinks import EncoderError, OutputError, OutputExistsError, is_image_output
from streamer.sinks.images import ImageSequenceSink, ImageSequenceSinkConfig
from streamer.sinks.mp4 import Mp4Sink, Mp4SinkConfig, VideoEncoderConfig
from streamer.sources import open_source


def copy_through(src: str, out, **sink_options) -> Mp4Sink:
    """Decode ``src`` and encode every frame into ``out`` (what a render does, minus the model)."""
    start = sink_options.pop("start_s", 0.0)
    duration = sink_options.pop("duration_s", None)
    with open_source(src, start_s=start, duration_s=duration) as source:
        sink = Mp4Sink(
            Mp4SinkConfig(
                out,
                frame_rate=source.frame_rate,
                audio_from=source.audio_path,
                audio_start_s=start,
                audio_duration_s=duration,
                **sink_options,
            )
        )
        with sink:
            for frame in source:
                sink.write(frame)
            sink.end_of_stream()
    return sink


@pytest.mark.parametrize("crash_safe", [True, False])
def test_timing_exact_and_audio_byte_identical(clip_with_audio, tmp_path, crash_safe):
    """B-frames on (libx264 default) and AAC with its 1024-sample priming: the fragmented file
    must carry both as edit lists (delay_moov), else every time shifts (see mp4.py)."""
    out = tmp_path / "out.mp4"
    sink = copy_through(str(clip_with_audio.path), out, crash_safe=crash_safe)
    assert sink.frames_written == 24 and sink.audio_streams == 1
    assert frame_times(out) == clip_with_audio.times  # exact Fractions, every frame
    assert video_duration(out) == video_duration(clip_with_audio.path) == 1  # last frame too
    source_audio = audio_packets(clip_with_audio.path)
    assert source_audio[0][0] < 0  # the priming packet really is there to be kept
    assert audio_packets(out) == source_audio  # same pts, same bytes
    for got, want in zip(frame_arrays(out), clip_with_audio.frames, strict=True):
        # two lossy generations (the test clip, then crf 18) on a smooth pattern
        assert np.abs(got.astype(int) - want).mean() < 8


def test_frame_rate_from_the_frames_when_not_given(clip_with_audio, tmp_path):
    """No frame-rate hint and a time base that is not a rate (1/12288): the gap between the
    first two frames gives the rate, so the last frame lasts as long as in the input."""
    with open_source(str(clip_with_audio.path)) as source:
        frames = list(source)
    assert 1 / frames[0].time_base > 240
    out = tmp_path / "out.mp4"
    with Mp4Sink(Mp4SinkConfig(out)) as sink:
        for frame in frames:
            sink.write(frame)
    assert frame_times(out) == clip_with_audio.times
    assert video_duration(out) == video_duration(clip_with_audio.path)
    single = tmp_path / "single.mp4"
    with Mp4Sink(Mp4SinkConfig(single)) as sink:
        sink.write(frames[0])  # held for the rate, then written on close
    assert frame_times(single) == [0]


def test_variable_frame_rate_survives(tmp_path):
    info = write_clip(tmp_path / "vfr.mp4", frames=16, vfr=True)
    out = tmp_path / "out.mp4"
    copy_through(str(info.path), out)
    assert frame_times(out) == info.times
    assert audio_packets(out) == audio_packets(info.path)


def test_no_audio_input_gives_no_audio_stream(tmp_path):
    info = write_clip(tmp_path / "silent.mp4", frames=8, audio=False)
    out = tmp_path / "out.mp4"
    copy_through(str(info.path), out)
    assert not has_audio(out) and frame_times(out) == info.times


def test_part_of_the_input_with_its_audio(tmp_path):
    info = write_clip(tmp_path / "clip.mp4", frames=48, fps=24)
    out = tmp_path / "part.mp4"
    copy_through(str(info.path), out, start_s=0.5, duration_s=1.0)
    assert frame_times(out) == [Fraction(i, 24) for i in range(24)]
    shift = 24000  # 0.5 s in the 1/48000 audio time base
    wanted = [(p - shift, b) for p, b in audio_packets(info.path) if 24000 <= p < 72000]
    assert audio_packets(out) == wanted  # the window's packets, unchanged, shifted by 0.5 s


def test_odd_size_is_padded_to_even_and_even_size_kept(tmp_path):
    rng = np.random.default_rng(1)
    image = rng.integers(0, 256, (37, 51, 3), dtype=np.uint8)
    image[:] = pattern_frame(0, 37, 51)
    out = tmp_path / "odd.mp4"
    with Mp4Sink(Mp4SinkConfig(out, encoder=VideoEncoderConfig(crf=0))) as sink:
        for i in range(3):
            sink.write(Frame(i, image, pts=i, time_base=Fraction(1, 10)))
    assert sink.padded_size == (38, 52)
    assert video_size(out) == (52, 38)
    decoded = frame_arrays(out)[0]
    # crf 0 is lossless in Y but yuv420p halves chroma: a tolerance for colour rounding
    assert np.abs(decoded[:37, :51].astype(int) - image).mean() < 3
    # the padding repeats the last column / row
    assert np.abs(decoded[:37, 51].astype(int) - decoded[:37, 50]).mean() < 3

    even = tmp_path / "even.mp4"
    with Mp4Sink(Mp4SinkConfig(even)) as sink:
        sink.write(Frame(0, np.zeros((36, 50, 3), np.uint8), pts=0, time_base=Fraction(1, 10)))
    assert sink.padded_size is None and video_size(even) == (50, 36)


@pytest.mark.parametrize("size", [(1, 24), (24, 1), (1, 1)])
def test_one_pixel_sides_are_padded_too(tmp_path, size):
    """At 1 pixel a halved chroma plane rounds up to 1 pixel: the sink must still pad."""
    height, width = size
    out = tmp_path / "thin.mp4"
    with Mp4Sink(Mp4SinkConfig(out)) as sink:
        for i in range(3):
            sink.write(Frame(i, pattern_frame(i, height, width), pts=i, time_base=Fraction(1, 10)))
    assert sink.padded_size == (height + height % 2, width + width % 2)
    assert video_size(out) == (width + width % 2, height + height % 2)
    assert len(frame_arrays(out)) == 3


def test_colours_survive_and_the_stream_says_how(tmp_path):
    """Saturated colours round-trip: the conversion matrix and the stream's tag agree (a BT.601
    conversion tagged, or guessed, as BT.709 shifts such colours by ~10 levels)."""
    image = np.zeros((64, 64, 3), np.uint8)
    colours = [(255, 0, 0), (0, 255, 0), (0, 0, 255), (250, 160, 30)]
    for i, colour in enumerate(colours):
        image[:, 16 * i : 16 * (i + 1)] = colour
    out = tmp_path / "colours.mp4"
    with Mp4Sink(Mp4SinkConfig(out, encoder=VideoEncoderConfig(crf=0))) as sink:
        sink.write(Frame(0, image, pts=0, time_base=Fraction(1, 10)))
    (decoded,) = decoded_frames(out)
    assert decoded.colorspace == 1 and decoded.color_range == 1  # BT.709, limited range
    rgb = decoded.to_ndarray(format="rgb24").astype(int)
    for i, colour in enumerate(colours):
        block = rgb[8:56, 16 * i + 4 : 16 * i + 12]  # away from chroma-subsampled edges
        # 8-bit limited-range YUV rounding: a few levels
        assert np.abs(block - colour).max() <= 4, (colour, block.mean(axis=(0, 1)))


def test_odd_size_needs_no_padding_in_yuv444(tmp_path):
    out = tmp_path / "odd444.mp4"
    config = Mp4SinkConfig(out, encoder=VideoEncoderConfig(pix_fmt="yuv444p"))
    with Mp4Sink(config) as sink:
        sink.write(Frame(0, pattern_frame(0, 37, 51), pts=0, time_base=Fraction(1, 10)))
    assert video_size(out) == (51, 37)


def test_what_a_kill_leaves_behind(tmp_path):
    """The bytes on disk while a sink is still writing are what a SIGKILL leaves (the page
    cache survives a killed process). Fragmented: plays up to the last complete fragment with
    exact times. Regular MP4: no index yet, does not open at all."""
    info = write_clip(tmp_path / "clip.mp4", frames=96, fps=24)
    with open_source(str(info.path)) as source:
        frames = list(source)
    for crash_safe in (True, False):
        out = tmp_path / f"out-{crash_safe}.mp4"
        sink = Mp4Sink(Mp4SinkConfig(out, crash_safe=crash_safe, fragment_s=0.5, frame_rate=24))
        for frame in frames:
            sink.write(frame)
        killed = tmp_path / f"killed-{crash_safe}.mp4"
        # crash-safe: under its final name since the first fragment; regular: still under its
        # temporary name (renamed only once finalized)
        assert out.exists() == crash_safe
        killed.write_bytes((out if crash_safe else sink.temp_path).read_bytes())
        sink.close()
        times = decodable_frame_times(killed)
        if crash_safe:
            # fragments of 0.5 s are complete up to the encoder's lookahead; frames in a torn
            # last fragment may be skipped by the decoder, but none is at a wrong time
            assert len(times) >= 48
            assert times[:48] == info.times[:48]
            assert set(times) <= set(info.times) and times == sorted(times)
        else:
            assert times == []
        assert frame_times(out) == info.times  # and the finished file has everything


def test_existing_output_needs_overwrite(clip_with_audio, tmp_path):
    out = tmp_path / "out.mp4"
    out.write_bytes(b"precious")
    with pytest.raises(OutputExistsError, match="--overwrite"):
        Mp4Sink(Mp4SinkConfig(out))
    assert out.read_bytes() == b"precious"
    copy_through(str(clip_with_audio.path), out, overwrite=True)
    assert len(frame_times(out)) == 24


def test_unwritable_or_bad_outputs_are_clear_errors(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(OutputError, match="does not exist"):
        Mp4Sink(Mp4SinkConfig(blocker / "out.mp4"))
    (tmp_path / "folder.mp4").mkdir()
    with pytest.raises(OutputError, match="is a folder"):
        Mp4Sink(Mp4SinkConfig(tmp_path / "folder.mp4"))
    with pytest.raises(OutputError, match=r"\.mp4"):
        Mp4SinkConfig(tmp_path / "out.avi")
    with pytest.raises(EncoderError, match="unknown video encoder 'h265x'"):
        VideoEncoderConfig(codec="h265x")
    with pytest.raises(EncoderError, match="audio encoder"):
        VideoEncoderConfig(codec="aac")
    with pytest.raises(EncoderError, match="pixel format"):
        VideoEncoderConfig(pix_fmt="rgb48le")


def test_bad_encoder_option_fails_at_the_first_frame(tmp_path):
    out = tmp_path / "out.mp4"
    sink = Mp4Sink(Mp4SinkConfig(out, encoder=VideoEncoderConfig(preset="warp-speed")))
    with pytest.raises(EncoderError, match="cannot open encoder libx264"):
        sink.write(Frame(0, np.zeros((32, 32, 3), np.uint8), pts=0, time_base=Fraction(1, 10)))
    sink.close()


def test_size_change_mid_stream_is_refused(tmp_path):
    sink = Mp4Sink(Mp4SinkConfig(tmp_path / "out.mp4"))
    with sink:
        sink.write(Frame(0, np.zeros((32, 32, 3), np.uint8), pts=0, time_base=Fraction(1, 10)))
        with pytest.raises(EncoderError, match="--size"):
            sink.write(Frame(1, np.zeros((48, 32, 3), np.uint8), pts=1, time_base=Fraction(1, 10)))
    assert len(frame_times(tmp_path / "out.mp4")) == 1


def test_sink_without_frames_leaves_no_file(tmp_path):
    out = tmp_path / "out.mp4"
    Mp4Sink(Mp4SinkConfig(out)).close()
    assert not out.exists()


def test_matroska_output_keeps_timing_and_audio(clip_with_audio, tmp_path):
    out = tmp_path / "out.mkv"
    copy_through(str(clip_with_audio.path), out)
    # Matroska stores milliseconds: times agree to the millisecond, the first at 0 exactly
    # (not shifted by the AAC priming, which stays a negative-time packet)
    assert [round(float(t), 3) for t in frame_times(out)] == [
        round(float(t), 3) for t in clip_with_audio.times
    ]
    copied = audio_packets(out)
    assert [b for _, b in copied] == [b for _, b in audio_packets(clip_with_audio.path)]
    assert copied[0][0] < 0


# -- image sequences -----------------------------------------------------------------------
def test_png_sequence_is_lossless_and_named_by_index(tmp_path):
    images = [pattern_frame(i, 20, 30) for i in range(3)]
    with ImageSequenceSink(ImageSequenceSinkConfig(tmp_path / "frames")) as sink:
        for i, image in enumerate(images):
            sink.write(Frame(i, image))
    names = sorted(p.name for p in (tmp_path / "frames").iterdir())
    assert names == ["000000.png", "000001.png", "000002.png"]
    with open_source(str(tmp_path / "frames")) as source:
        for frame, image in zip(source, images, strict=True):
            np.testing.assert_array_equal(frame.image, image)


def test_png_pattern_existing_frames_and_overwrite(tmp_path):
    pattern = tmp_path / "f_%03d.png"
    with ImageSequenceSink(ImageSequenceSinkConfig(pattern)) as sink:
        for i in range(4):
            sink.write(Frame(i, pattern_frame(i, 8, 8)))
    with pytest.raises(OutputExistsError, match="--overwrite"):
        ImageSequenceSink(ImageSequenceSinkConfig(pattern))
    with ImageSequenceSink(ImageSequenceSinkConfig(pattern, overwrite=True)) as sink:
        sink.write(Frame(0, pattern_frame(0, 8, 8)))
    # the longer earlier run's frames are gone: no stale frame 1..3 next to the new frame 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f_000.png"]


def test_bad_image_patterns(tmp_path):
    with pytest.raises(EncoderError, match="one integer field"):
        ImageSequenceSink(ImageSequenceSinkConfig(tmp_path / "%d_%d.png"))
    with pytest.raises(EncoderError, match="expected one of"):
        ImageSequenceSink(ImageSequenceSinkConfig(tmp_path / "%d.gif"))


def test_image_output_detection(tmp_path):
    assert is_image_output(tmp_path)
    assert is_image_output("out/frames/")
    assert is_image_output("out/%06d.png")
    assert not is_image_output("out.mp4")
