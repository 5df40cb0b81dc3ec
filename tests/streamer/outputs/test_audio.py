"""The source's audio through a network output's connection: an AAC input is copied, any other
codec is encoded to AAC, both on the video's clock; an input without audio gets a silent track.
Written into a local FLV file (what an RTMP output sends) and read back with PyAV; the real
``live --output rtmp://`` through nginx-rtmp is the slow test at the end."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path
from types import SimpleNamespace

import av
import numpy as np
import pytest
from helpers.media import pattern_frame, write_clip

from streamer.outputs.av_connection import AvConnection, EncoderSettings
from streamer.sources.audio_feed import AudioChunk, AudioFeed
from streamer.sources.file import FileSource, FileSourceConfig

FPS = 15


def _tracks(path: Path) -> dict[str, object]:
    """Read ``path`` back: video span, audio span, audio peak and codec names."""
    video: list[float] = []
    audio: list[tuple[float, float]] = []
    peak = 0.0
    with av.open(str(path)) as container:
        codecs = [s.codec_context.name for s in container.streams]
        for frame in container.decode(*container.streams):
            if isinstance(frame, av.AudioFrame):
                audio.append(
                    (float(frame.pts * frame.time_base), frame.samples / frame.sample_rate)
                )
                peak = max(peak, float(np.abs(frame.to_ndarray()).max()))
            else:
                video.append(float(frame.pts * frame.time_base))
    return {
        "codecs": codecs,
        "video_s": (video[0], video[-1] + 1 / FPS),
        "audio_s": (audio[0][0], audio[-1][0] + audio[-1][1]) if audio else None,
        "peak": peak,
    }


def _through_flv(source_path: Path, out: Path, *, silent: bool = True, **config) -> None:
    """Every frame of ``source_path`` into one :class:`AvConnection` writing FLV to ``out``."""
    with FileSource(FileSourceConfig(str(source_path), **config)) as source:
        if source.audio is not None:
            source.audio.activate()
        connection = None
        for frame in source:
            if connection is None:
                connection = AvConnection(
                    lambda: av.open(str(out), "w", format="flv"),
                    EncoderSettings(),
                    frame,
                    Fraction(FPS),
                    silent_audio=silent,
                    audio=source.audio,
                )
            connection.send(frame)
        assert connection is not None
        connection.close()


def _write_pcm_clip(path: Path, seconds: float = 3.0, rate: int = 44100) -> None:
    """A Matroska clip: H.264 video + a 16-bit PCM stereo sine (a codec that is not AAC)."""
    with av.open(str(path), "w") as container:
        video = container.add_stream("libx264", rate=FPS)
        video.width, video.height, video.pix_fmt = 64, 48, "yuv420p"
        sound = container.add_stream("pcm_s16le", rate=rate, layout="stereo")
        for i in range(round(seconds * FPS)):
            frame = av.VideoFrame.from_ndarray(pattern_frame(i, 48, 64), format="rgb24")
            frame.pts, frame.time_base = i, Fraction(1, FPS)
            container.mux(video.encode(frame))
        container.mux(video.encode(None))
        t = np.arange(round(seconds * rate)) / rate
        tone = (0.3 * 32767 * np.sin(2 * np.pi * 440 * t)).astype(np.int16)
        for start in range(0, tone.size, 1024):
            part = np.repeat(tone[start : start + 1024][None, :], 2, axis=0)
            chunk = av.AudioFrame.from_ndarray(
                part.T.reshape(1, -1).copy(), format="s16", layout="stereo"
            )
            chunk.sample_rate, chunk.pts = rate, start
            chunk.time_base = Fraction(1, rate)
            container.mux(sound.encode(chunk))
        container.mux(sound.encode(None))


def _assert_in_sync(tracks: dict[str, object]) -> None:
    (v0, v1), (a0, a1) = tracks["video_s"], tracks["audio_s"]
    assert abs(a0 - v0) < 0.1 and abs((a1 - a0) - (v1 - v0)) < 0.3, tracks


def test_aac_audio_is_copied_unchanged_and_in_sync(tmp_path: Path) -> None:
    write_clip(tmp_path / "in.mp4", frames=45, size=(48, 64), fps=FPS, audio=True)
    _through_flv(tmp_path / "in.mp4", tmp_path / "out.flv")
    tracks = _tracks(tmp_path / "out.flv")
    assert tracks["codecs"] == ["h264", "aac"]
    assert tracks["peak"] > 0.1  # the sine, not silence
    _assert_in_sync(tracks)


def test_pcm_audio_is_encoded_to_aac_and_in_sync(tmp_path: Path) -> None:
    _write_pcm_clip(tmp_path / "in.mkv")
    _through_flv(tmp_path / "in.mkv", tmp_path / "out.flv")
    tracks = _tracks(tmp_path / "out.flv")
    assert tracks["codecs"] == ["h264", "aac"]
    assert tracks["peak"] > 0.1
    _assert_in_sync(tracks)


def test_a_start_offset_shifts_the_audio_with_the_video(tmp_path: Path) -> None:
    write_clip(tmp_path / "in.mp4", frames=60, size=(48, 64), fps=FPS, audio=True)
    _through_flv(tmp_path / "in.mp4", tmp_path / "out.flv", start_s=1.0)
    tracks = _tracks(tmp_path / "out.flv")
    assert tracks["peak"] > 0.1
    _assert_in_sync(tracks)
    assert tracks["video_s"][1] == pytest.approx(3.0, abs=0.1)


def test_no_source_audio_means_a_silent_track_or_none(tmp_path: Path) -> None:
    write_clip(tmp_path / "in.mp4", frames=30, size=(48, 64), fps=FPS, audio=False)
    _through_flv(tmp_path / "in.mp4", tmp_path / "silent.flv")
    tracks = _tracks(tmp_path / "silent.flv")
    assert tracks["codecs"] == ["h264", "aac"] and tracks["peak"] == 0.0
    _assert_in_sync(tracks)
    _through_flv(tmp_path / "in.mp4", tmp_path / "video.flv", silent=False)
    assert _tracks(tmp_path / "video.flv")["codecs"] == ["h264"]


def test_a_feed_is_free_until_activated_and_bounded_per_reader(tmp_path: Path) -> None:
    write_clip(tmp_path / "in.mp4", frames=15, size=(48, 64), fps=FPS, audio=True)
    with FileSource(FileSourceConfig(str(tmp_path / "in.mp4"))) as source:
        feed = source.audio
        assert isinstance(feed, AudioFeed) and feed.copies
        list(source)  # not activated: nothing kept
        assert feed.reader().take_until(None) == []
    small = AudioFeed(SimpleNamespace(codec_context=SimpleNamespace(name="aac")), capacity=4)
    late = small.reader()
    for i in range(10):
        small.put(AudioChunk(i * 0.1, 0.1, data=b"x"))
    early = small.reader()  # a new reader starts at the oldest chunk kept
    assert [c.time_s for c in early.take_until(0.75)] == pytest.approx([0.6, 0.7])
    assert [c.time_s for c in late.take_until(None)] == pytest.approx([0.6, 0.7, 0.8, 0.9])
    assert late.lost == 6 and early.take_until(None)[0].time_s == pytest.approx(0.8)
