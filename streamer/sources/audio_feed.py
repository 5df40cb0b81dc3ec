"""A source's audio, handed to the outputs while the source decodes video.

A source with audio (a file, a network stream) owns one :class:`AudioFeed` and puts every audio
packet into it as it demuxes; each network output connection reads the feed with its own
:class:`AudioReader` (a cursor), so one slow output never holds audio back from another. The
feed is a bounded ring (:data:`CAPACITY` chunks, about 20 s of AAC): the oldest chunk goes when
it is full, so an input nobody reads costs a fixed amount of memory and the source never blocks.

Timestamps are on the VIDEO frames' clock (:attr:`streamer.frames.Frame.time_s`, seconds): the
source applies the same shift to audio as to its frames (a file's ``start_s``, a stream's
rebasing), so an output that maps both with one origin keeps A/V in sync.

Two kinds of chunk: an AAC input is passed through unchanged (``data``: the packet's bytes;
the output copies the stream's parameters from :attr:`AudioFeed.template`); any other codec is
decoded once here and resampled to stereo 48 kHz float (``samples``, shape (2, n)), which the
outputs encode to AAC.

The AAC template is a copy of the input stream's parameters held by the feed itself (in a
private, never-written output container): a network source closes its input container on every
reconnect, and an output connecting after that must not read the closed stream.
"""

from __future__ import annotations

import io
import logging
import threading
from collections import deque
from dataclasses import dataclass
from typing import Any

import av
import numpy as np

log = logging.getLogger(__name__)

CAPACITY = 1024
PCM_RATE = 48000


@dataclass(frozen=True)
class AudioChunk:
    """One piece of audio at ``time_s`` (video clock, seconds) lasting ``duration_s``.

    Exactly one of ``data`` (an AAC packet's bytes, to copy) and ``samples`` ((2, n) float32 at
    :data:`PCM_RATE`, to encode) is set.
    """

    time_s: float
    duration_s: float
    data: bytes | None = None
    samples: np.ndarray | None = None


class AudioFeed:
    """The ring of :class:`AudioChunk` s one source fills and many outputs read.

    Args:
        stream: the input audio stream (AAC: packets are copied, this stream is the template
            of the outputs' audio stream; otherwise: decoded and resampled here).
        capacity: chunks kept at most (the oldest are dropped).
    """

    def __init__(self, stream: Any, capacity: int = CAPACITY) -> None:
        self.codec = stream.codec_context.name
        self._holder: Any = None  # owns the template's copy of the input's parameters
        self.template = self._detach(stream) if self.codec == "aac" else None
        self._rate = getattr(stream.codec_context, "sample_rate", None)
        self._resampler = (
            None if self.template is not None else av.AudioResampler("fltp", "stereo", PCM_RATE)
        )
        self._chunks: deque[tuple[int, AudioChunk]] = deque(maxlen=capacity)
        self._next = 0
        self._lock = threading.Lock()
        self.active = False  # nothing is kept until an output asks for audio

    def _detach(self, stream: Any) -> Any:
        """The stream's parameters, copied into a stream this feed owns (see the module doc)."""
        if not isinstance(stream, av.stream.Stream):
            return stream  # a stand-in (tests): nothing to outlive
        self._holder = av.open(io.BytesIO(), "w", format="matroska")
        return self._holder.add_stream_from_template(stream)

    def accepts(self, stream: Any) -> bool:
        """Whether packets of ``stream`` (e.g. a reconnected network input's) can go on into
        this feed: the same codec and, when copied, the same sample rate as the template."""
        ctx = stream.codec_context
        if ctx.name != self.codec:
            return False
        return not self.copies or getattr(ctx, "sample_rate", None) == self._rate

    def stream_in(self, container: Any, where: str) -> Any:
        """``container``'s first audio stream when :meth:`accepts` it, else None (logged)."""
        if not container.streams.audio:
            return None
        stream = container.streams.audio[0]
        if self.accepts(stream):
            return stream
        log.warning("%s: the audio changed codec or rate: not passed on", where)
        return None

    def activate(self) -> None:
        """Start keeping chunks (an output will read them); before, :meth:`add_packet` is free,
        so a source nobody takes audio from spends nothing on it."""
        self.active = True

    @property
    def copies(self) -> bool:
        """True when the input is AAC and its packets are passed through unchanged."""
        return self.template is not None

    def put(self, chunk: AudioChunk) -> None:
        with self._lock:
            self._chunks.append((self._next, chunk))
            self._next += 1

    def add_packet(self, packet: av.Packet, shift_s: float = 0.0) -> None:
        """Add one demuxed packet of the feed's stream, its time moved by ``-shift_s`` onto the
        video clock (packets without pts, e.g. flush packets, are skipped)."""
        if not self.active or packet.pts is None or packet.time_base is None:
            return
        time_s = float(packet.pts * packet.time_base) - shift_s
        duration_s = float((packet.duration or 0) * packet.time_base)
        if self._resampler is None:
            self.put(AudioChunk(time_s, duration_s, data=bytes(packet)))
            return
        try:
            frames = packet.decode()
        except av.FFmpegError as err:
            log.debug("audio packet not decodable (%s): skipped", err)
            return
        for frame in frames:
            start = time_s if frame.pts is None else float(frame.pts * frame.time_base) - shift_s
            frame.pts = None  # the resampler re-times nothing: the chunk carries the time
            for out in self._resampler.resample(frame):
                samples = out.to_ndarray().reshape(2, -1).astype(np.float32, copy=False)
                self.put(AudioChunk(start, samples.shape[1] / PCM_RATE, samples=samples))
                start += samples.shape[1] / PCM_RATE

    def reader(self) -> AudioReader:
        """A cursor at the oldest chunk kept (an output connecting late still gets the audio
        of the frames it will send; older chunks are skipped by time)."""
        with self._lock:
            first = self._chunks[0][0] if self._chunks else self._next
        return AudioReader(self, first)

    def _after(self, cursor: int, until_s: float | None) -> tuple[list[AudioChunk], int, int]:
        """Chunks from ``cursor`` on up to ``until_s`` (None: all), the new cursor, and how many
        chunks the ring dropped before this reader got them."""
        with self._lock:
            first = self._chunks[0][0] if self._chunks else self._next
            lost = max(0, first - cursor)
            taken: list[AudioChunk] = []
            for seq, chunk in self._chunks:
                if seq < cursor:
                    continue
                if until_s is not None and chunk.time_s > until_s:
                    break
                taken.append(chunk)
                cursor = seq + 1
            return taken, max(cursor, first), lost


class AudioReader:
    """One consumer's position in an :class:`AudioFeed`."""

    def __init__(self, feed: AudioFeed, cursor: int) -> None:
        self.feed = feed
        self._cursor = cursor
        self.lost = 0

    def take_until(self, until_s: float | None) -> list[AudioChunk]:
        """The chunks not read yet starting at or before ``until_s`` (None: all there are)."""
        chunks, self._cursor, lost = self.feed._after(self._cursor, until_s)
        self.lost += lost
        return chunks


__all__ = ["PCM_RATE", "AudioChunk", "AudioFeed", "AudioReader"]
