"""Copying a file's audio into an output container packet by packet (no re-encode).

The MP4 sink (:mod:`streamer.sinks.mp4`) interleaves the copy with the video as it writes it:
:meth:`AudioCopy.copy_until` muxes every packet presented before a time, cut to the rendered
part ``[start, start + duration)`` of the input and shifted by ``start`` (the same shift the
source applied to the video), so audio and video stay in sync to the sample.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from fractions import Fraction

import av

from streamer.sinks import OutputError

log = logging.getLogger(__name__)


class AudioCopy:
    """Copies the audio packets of one input file into an output container, unchanged."""

    def __init__(
        self,
        path: str,
        output: av.container.OutputContainer,
        *,
        start_s: float,
        duration_s: float | None,
        allowed: frozenset[str] | None,
    ) -> None:
        self.path = path
        self.output = output
        self.start_s = start_s
        self.end_s = None if duration_s is None else start_s + duration_s
        self.copied = 0
        try:
            self.input = av.open(path)
        except av.FFmpegError as err:
            raise OutputError(f"cannot read the audio of {path}: {err}") from err
        self.pairs: dict[int, tuple[av.audio.stream.AudioStream, av.stream.Stream]] = {}
        for stream in self.input.streams.audio:
            name = stream.codec_context.name
            if allowed is not None and name not in allowed:
                log.warning(
                    "audio stream %d (%s) cannot be copied into MP4 unchanged: left out "
                    "(write a .mkv file to keep it)",
                    stream.index,
                    name,
                )
                continue
            self.pairs[stream.index] = (stream, output.add_stream_from_template(stream))
        self._packets: Iterator[av.Packet] | None = None
        self._held: av.Packet | None = None
        self._done = not self.pairs
        if self.pairs:
            if start_s > 0:
                try:
                    self.input.seek(int(start_s * av.time_base), backward=True)
                except av.FFmpegError as err:
                    log.debug("audio seek failed (%s): reading from the start", err)
            self._packets = self.input.demux([s for s, _ in self.pairs.values()])

    def _shift(self, stream: av.audio.stream.AudioStream) -> int:
        return round(Fraction(self.start_s) / stream.time_base) if self.start_s else 0

    def copy_until(self, until_s: float | None, *, inclusive: bool = True) -> None:
        """Mux every packet presented before ``until_s`` (output time; None: to the end)."""
        while not self._done:
            packet = self._held or self._next()
            self._held = None
            if packet is None:
                return
            in_stream, out_stream = self.pairs[packet.stream.index]
            ts = packet.pts if packet.pts is not None else packet.dts
            time_s = float(ts * in_stream.time_base)
            if self.start_s and time_s < self.start_s:
                continue  # before the part being rendered
            if self.end_s is not None and time_s >= self.end_s:
                if time_s > self.end_s + 2.0:  # every stream is past the end by now
                    self._done = True
                continue  # after the part (other streams may still have packets inside)
            out_time = time_s - self.start_s
            if until_s is not None and (
                out_time > until_s or (not inclusive and out_time >= until_s)
            ):
                self._held = packet
                return
            shift = self._shift(in_stream)
            if shift:
                packet.pts = None if packet.pts is None else packet.pts - shift
                packet.dts = packet.dts - shift
            packet.stream = out_stream
            self.output.mux(packet)
            self.copied += 1

    def _next(self) -> av.Packet | None:
        """The next audio packet with a dts (flush packets have none), or None at the end."""
        while True:
            try:
                packet = next(self._packets)
            except StopIteration:
                self._done = True
                return None
            except av.FFmpegError as err:
                log.warning("audio of %s is damaged (%s): audio stops here", self.path, err)
                self._done = True
                return None
            if packet.dts is not None:
                return packet

    def close(self) -> None:
        self.input.close()
