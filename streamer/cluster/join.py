"""Rendered segments -> one video, without encoding anything again.

The packets of the segment files are remuxed in order into one output with the layout a single
``render`` writes (:func:`streamer.sinks.mp4.container_options`: fragmented, ``delay_moov``,
crash-safe by default), the video stream in the input's time base. Each segment was encoded with
the input's own pts minus its start, so adding the start back gives the exact input times; the
joiner checks (:func:`verify_segment_file`) and copies them. The input's audio is copied once,
packet by packet, interleaved with the video (the single render's
:class:`~streamer.sinks.audio.AudioCopy`).

The output follows the one overwrite policy of :mod:`streamer.guard`: it is joined under a
temporary name in its folder (:func:`~streamer.guard.atomic_output`) and renamed onto the final
name only once complete, so a failed or interrupted join leaves an older output untouched; the
caller checks the output (exists, overlap with an input) before the job starts.

Segments must share the codec parameters (same encoder, settings and frame size: they do when
one job rendered them); the joiner refuses segments whose headers differ rather than writing a
video that breaks at a cut.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av

from adaattn_video.errors import StylestreamError
from streamer.guard import atomic_output, guard_output
from streamer.sinks import OutputError
from streamer.sinks.audio import AudioCopy
from streamer.sinks.mp4 import AUDIO_LEAD_S, MP4_AUDIO_CODECS, MP4_FAMILY, container_options

log = logging.getLogger(__name__)


class SegmentInvalidError(StylestreamError, ValueError):
    """A segment file does not hold what the plan says (wrong frames or times, damaged)."""


def segment_times(path: str | Path) -> list[Fraction]:
    """Presentation times (seconds, exact) of the video packets of a segment file, sorted."""
    try:
        with av.open(str(path)) as container:
            stream = container.streams.video[0]
            base = Fraction(stream.time_base)
            return sorted(
                p.pts * base for p in container.demux(stream) if p.pts is not None and p.size
            )
    except (av.FFmpegError, IndexError) as err:
        raise SegmentInvalidError(f"segment file {path} is unreadable: {err}") from err


def verify_segment_file(path: str | Path, pts: Sequence[int], time_base: Fraction) -> None:
    """Check that ``path`` holds one video packet at each of the input times ``pts`` (the
    file's times start at 0: ``pts[0]`` is its first frame).

    Raises:
        SegmentInvalidError: missing, damaged, or other frames/times than planned.
    """
    if not Path(path).is_file():
        raise SegmentInvalidError(f"segment file {path} is missing")
    got = segment_times(path)
    want = [(p - pts[0]) * time_base for p in pts] if pts else []
    if got != want:
        first = next((i for i, (a, b) in enumerate(zip(got, want, strict=False)) if a != b), None)
        where = f"first difference at frame {first}" if first is not None else "lengths differ"
        raise SegmentInvalidError(
            f"segment file {path}: {len(got)} frames, expected {len(want)} at the input's "
            f"times ({where})"
        )


@dataclass(frozen=True)
class JoinResult:
    """What :func:`join_segments` wrote."""

    output: Path
    video_packets: int
    audio_packets: int
    audio_streams: int
    seconds: float


def join_segments(
    segment_files: Sequence[str | Path],
    output: str | Path,
    *,
    starts: Sequence[int],
    time_base: Fraction,
    audio_from: str | None,
    crash_safe: bool = True,
    fragment_s: float = 1.0,
    overwrite: bool = False,
) -> JoinResult:
    """Remux ``segment_files`` (in order) into ``output`` with the audio of ``audio_from``.

    Segment ``k``'s timestamps start at 0; ``starts[k]`` (input ticks) is added back.

    ``time_base`` is the input video's (the output video stream gets it, as a single render
    gives it). Raises :class:`SegmentInvalidError` when segments do not fit together,
    :class:`~streamer.guard.OutputOverlapError` when ``output`` is the input or a segment, and
    :class:`~streamer.sinks.OutputError` when the output cannot be written.
    """
    import time

    began = time.perf_counter()
    if not segment_files or len(starts) != len(segment_files):
        raise SegmentInvalidError("expected one start per segment file, and at least one")
    # never over the input (the audio source) or a segment, even with ``overwrite``
    output = guard_output(output, inputs=[audio_from, *segment_files], overwrite=overwrite,
                          kind="file")  # fmt: skip
    suffix = output.suffix.lower()
    inputs = [av.open(str(path)) for path in segment_files]
    audio: AudioCopy | None = None
    video_packets = 0
    try:
        template = inputs[0].streams.video[0]
        _check_compatible(inputs, segment_files)
        with atomic_output(output) as temp:
            try:
                out = av.open(
                    str(temp), "w", options=container_options(suffix, crash_safe, fragment_s)
                )
            except av.FFmpegError as err:
                raise OutputError(f"cannot open output {output}: {err}") from err
            try:
                out_video = out.add_stream_from_template(template)
                out_video.time_base = time_base
                if audio_from is not None:
                    audio = AudioCopy(
                        audio_from,
                        out,
                        start_s=0.0,
                        duration_s=None,
                        allowed=MP4_AUDIO_CODECS if suffix in MP4_FAMILY else None,
                    )
                video_packets = _remux_video(inputs, segment_files, starts, time_base, out,
                                             out_video, audio)  # fmt: skip
                if audio is not None:
                    audio.copy_until(None)
            except (av.FFmpegError, OSError) as err:
                raise OutputError(f"joining segments into {output} failed: {err}") from err
            finally:
                if audio is not None:
                    audio.close()
                out.close()
    finally:
        for container in inputs:
            container.close()
    return JoinResult(
        output=output,
        video_packets=video_packets,
        audio_packets=0 if audio is None else audio.copied,
        audio_streams=0 if audio is None else len(audio.pairs),
        seconds=time.perf_counter() - began,
    )


def _remux_video(
    inputs: Sequence[av.container.InputContainer],
    names: Sequence[str | Path],
    starts: Sequence[int],
    time_base: Fraction,
    out: av.container.OutputContainer,
    out_video: av.stream.Stream,
    audio: AudioCopy | None,
) -> int:
    """Mux every video packet of the segments, shifted by their starts, with the audio
    interleaved; returns the packets written."""
    video_packets = 0
    last_dts: Fraction | None = None
    for container, path, start in zip(inputs, names, starts, strict=True):
        stream = container.streams.video[0]
        base = Fraction(stream.time_base)
        offset = start * time_base / base
        if offset.denominator != 1:
            raise SegmentInvalidError(
                f"segment {path}: its time base {base} cannot hold the start "
                f"{start} x {time_base} exactly"
            )
        for packet in container.demux(stream):
            if packet.dts is None:
                continue
            packet.dts += int(offset)
            if packet.pts is not None:
                packet.pts += int(offset)
            dts = packet.dts * base
            if last_dts is not None and dts <= last_dts:
                raise SegmentInvalidError(
                    f"segment {path} starts decoding at {float(dts):.4f} s, before the "
                    f"previous segment ended ({float(last_dts):.4f} s): segments encoded "
                    "with different settings cannot be joined"
                )
            last_dts = dts
            if audio is not None:
                audio.copy_until(float(dts) + AUDIO_LEAD_S)
            packet.stream = out_video
            out.mux(packet)
            video_packets += 1
    return video_packets


def _check_compatible(inputs: Sequence[av.container.InputContainer], names: Sequence) -> None:
    first = inputs[0].streams.video[0].codec_context
    for container, name in zip(inputs[1:], names[1:], strict=True):
        context = container.streams.video[0].codec_context
        same = (
            context.name == first.name
            and (context.width, context.height) == (first.width, first.height)
            and context.pix_fmt == first.pix_fmt
            and bytes(context.extradata or b"") == bytes(first.extradata or b"")
        )
        if not same:
            raise SegmentInvalidError(
                f"segment {name} was encoded with other settings than {names[0]} "
                f"({context.name} {context.width}x{context.height} {context.pix_fmt} vs "
                f"{first.name} {first.width}x{first.height} {first.pix_fmt}, or other codec "
                "headers): render them again in one job"
            )
