"""The audio track of a network output: the source's audio, or silence.

- :class:`SourceAudio`: reads an :class:`~streamer.sources.audio_feed.AudioFeed` from the
  connection's start. AAC packets are copied unchanged into a stream made from the input's
  (same parameters); other codecs arrive as stereo 48 kHz samples and are encoded to AAC.
  Every chunk's time is on the video frames' clock, mapped with the SAME origin as the video
  (the connection's first frame), so players keep A/V in sync; chunks before the origin are
  dropped, and a reconnect (a new connection) restarts the audio from the next chunk.
- :class:`SilentAudio`: a stereo 48 kHz AAC track of silence following the video clock (RTMP
  ingest services expect an audio track).

Both are told "the video has reached ``t`` seconds" (:meth:`AudioTrack.advance`) and mux
their audio up to ``t`` (plus a small lead while running); :meth:`AudioTrack.finish` muxes the
rest up to the video's end and flushes the encoder.
"""

from __future__ import annotations

from fractions import Fraction
from typing import Any

import av
import numpy as np

from streamer.sources.audio_feed import PCM_RATE, AudioChunk, AudioFeed

AUDIO_RATE = PCM_RATE
AAC_FRAME = 1024
AUDIO_LEAD_S = 0.1  # audio is muxed this far ahead of the last video frame
RESYNC_S = 0.1  # a gap (or overlap) in the source audio larger than this moves the clock


class AudioTrack:
    """One audio stream of an output container (see the module doc)."""

    def __init__(self, container: Any) -> None:
        self.container = container
        self.stream = self._add_stream()

    def _add_stream(self) -> Any:
        stream = self.container.add_stream("aac", rate=AUDIO_RATE, layout="stereo")
        stream.codec_context.time_base = Fraction(1, AUDIO_RATE)
        return stream

    def advance(self, origin_s: float, video_s: float) -> None:
        """Mux audio up to ``video_s`` (seconds since the connection's first frame) + a lead;
        ``origin_s`` is that first frame's time on the source clock."""
        self._mux_until(origin_s, video_s + AUDIO_LEAD_S)

    def finish(self, origin_s: float | None, end_s: float) -> None:
        """Mux the audio up to the video's end ``end_s``, then flush the encoder."""
        if origin_s is not None:
            self._mux_until(origin_s, end_s)
        self._flush()

    def _mux_until(self, origin_s: float, until_s: float) -> None:
        raise NotImplementedError

    def _flush(self) -> None:
        raise NotImplementedError


class _Pcm:
    """Samples -> 1024-sample AAC frames with pts from a running sample counter."""

    def __init__(self, stream: Any, container: Any) -> None:
        self.stream = stream
        self.container = container
        self.buffer = np.zeros((2, 0), np.float32)
        self.next_pts: int | None = None  # pts of the buffer's first sample

    def push(self, samples: np.ndarray, pts: int) -> None:
        expected = None if self.next_pts is None else self.next_pts + self.buffer.shape[1]
        if expected is None or abs(pts - expected) > RESYNC_S * AUDIO_RATE:
            self.flush_partial()
            self.next_pts = pts
        self.buffer = np.concatenate([self.buffer, samples], axis=1)
        while self.buffer.shape[1] >= AAC_FRAME:
            self._encode(self.buffer[:, :AAC_FRAME])
            self.buffer = self.buffer[:, AAC_FRAME:]

    def flush_partial(self) -> None:
        if self.buffer.shape[1]:
            pad = np.zeros((2, AAC_FRAME - self.buffer.shape[1]), np.float32)
            self._encode(np.concatenate([self.buffer, pad], axis=1))
            self.buffer = self.buffer[:, :0]

    def _encode(self, samples: np.ndarray) -> None:
        frame = av.AudioFrame.from_ndarray(
            np.ascontiguousarray(samples), format="fltp", layout="stereo"
        )
        frame.sample_rate = AUDIO_RATE
        frame.pts = self.next_pts
        frame.time_base = Fraction(1, AUDIO_RATE)
        self.next_pts = (self.next_pts or 0) + AAC_FRAME
        self.container.mux(self.stream.encode(frame))


class SilentAudio(AudioTrack):
    """Stereo 48 kHz AAC silence on the video clock."""

    def __init__(self, container: Any) -> None:
        super().__init__(container)
        self._pcm = _Pcm(self.stream, container)
        self._samples = 0

    def _mux_until(self, origin_s: float, until_s: float) -> None:
        while self._samples < until_s * AUDIO_RATE:
            self._pcm.push(np.zeros((2, AAC_FRAME), np.float32), self._samples)
            self._samples += AAC_FRAME

    def _flush(self) -> None:
        self.container.mux(self.stream.encode(None))


class SourceAudio(AudioTrack):
    """The source's audio from ``feed`` (copied when AAC, else encoded)."""

    def __init__(self, container: Any, feed: AudioFeed) -> None:
        self.feed = feed
        super().__init__(container)
        self.reader = feed.reader()
        self._pcm = None if feed.copies else _Pcm(self.stream, container)
        self._last_pts = -1

    def _add_stream(self) -> Any:
        if self.feed.template is None:
            return super()._add_stream()
        return self.container.add_stream_from_template(self.feed.template)

    def _mux_until(self, origin_s: float, until_s: float) -> None:
        for chunk in self.reader.take_until(origin_s + until_s):
            relative = chunk.time_s - origin_s
            if relative < 0:
                continue  # before the connection's first frame
            if self._pcm is not None and chunk.samples is not None:
                self._pcm.push(chunk.samples, round(relative * AUDIO_RATE))
            elif chunk.data is not None:
                self._copy(chunk, relative)

    def _copy(self, chunk: AudioChunk, relative_s: float) -> None:
        time_base = self.stream.time_base or Fraction(1, AUDIO_RATE)
        pts = round(relative_s / time_base)
        if pts <= self._last_pts:
            return  # a duplicate or a step back: never a non-increasing dts
        self._last_pts = pts
        packet = av.Packet(chunk.data)
        packet.pts = packet.dts = pts
        packet.duration = round(chunk.duration_s / time_base)
        packet.time_base = time_base
        packet.stream = self.stream
        self.container.mux(packet)

    def _flush(self) -> None:
        if self._pcm is not None:
            self._pcm.flush_partial()
            self.container.mux(self.stream.encode(None))


__all__ = ["AAC_FRAME", "AUDIO_LEAD_S", "AUDIO_RATE", "AudioTrack", "SilentAudio", "SourceAudio"]
