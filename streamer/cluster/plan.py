"""Where the segments of a video start and end.

A video is probed once by demuxing its video packets (no decoding: 0.6 s per hour of 24 fps
video measured on small frames; the file is read once, so a large file takes as long as reading
it), which gives every frame's presentation timestamp (pts) and which frames are
keyframes. Segments are then cut so that **every frame belongs to exactly one segment**: a
segment is the half-open pts range ``[start_pts, end_pts)`` (the last one is open-ended), and
frames are counted per segment so a worker can check it decoded exactly the frames planned.

Cuts are placed on keyframes: the first keyframe at least ``segment_s`` seconds after the
previous cut. A worker seeks to that keyframe and decodes from there, so no frame is decoded
twice. When an input has no keyframe for a long stretch (more than 1.5 x ``segment_s``), the cut
is placed on the frame at the target time instead; the worker then decodes from the keyframe
before it and drops the frames before the cut (correct, a little slower).
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av

from streamer.sources import SourceError, SourceNotFoundError


@dataclass(frozen=True)
class Segment:
    """One part of a video.

    Attributes:
        index: 0-based position in the video.
        start_pts: pts of its first frame (input time base).
        end_pts: pts of the first frame of the next segment, or None for the last segment.
        first_frame: 0-based index of its first frame in the whole video (PNG file numbers).
        frames: how many frames it holds.
    """

    index: int
    start_pts: int
    end_pts: int | None
    first_frame: int
    frames: int


@dataclass(frozen=True)
class VideoPlan:
    """A probed video and its segments.

    Attributes:
        path: the input file.
        time_base: seconds per pts tick of its first video stream.
        frame_pts: every frame's pts in presentation order.
        segments: the segments, in order; together they hold every frame once.
        has_audio: the file has at least one audio stream.
    """

    path: str
    time_base: Fraction
    frame_pts: tuple[int, ...]
    segments: tuple[Segment, ...]
    has_audio: bool

    @property
    def frames(self) -> int:
        return len(self.frame_pts)

    @property
    def duration_s(self) -> float:
        if len(self.frame_pts) < 2:
            return 0.0
        step = self.frame_pts[-1] - self.frame_pts[-2]
        return float((self.frame_pts[-1] + step - self.frame_pts[0]) * self.time_base)

    def segment_pts(self, segment: Segment) -> tuple[int, ...]:
        """The pts of the frames of ``segment``."""
        return self.frame_pts[segment.first_frame : segment.first_frame + segment.frames]


def probe_video(path: str | Path) -> tuple[Fraction, list[int], list[int], bool]:
    """(time base, sorted frame pts, keyframe pts, has audio) of the first video stream, from
    its packets (not decoded).

    Raises:
        SourceNotFoundError: no such file.
        SourceError: not a video FFmpeg reads, no video stream, or packets without timestamps
            (raw streams cannot be cut exactly: render them without ``--ray``).
    """
    path = Path(path)
    if not path.is_file():
        raise SourceNotFoundError(f"input {path} does not exist")
    try:
        container = av.open(str(path))
    except av.FFmpegError as err:
        raise SourceError(f"cannot open input {path}: {err} (is it a video file?)") from err
    with container:
        if not container.streams.video:
            raise SourceError(f"input {path} has no video stream")
        stream = container.streams.video[0]
        time_base = Fraction(stream.time_base)
        pts: list[int] = []
        keyframes: list[int] = []
        try:
            for packet in container.demux(stream):
                if packet.dts is None and packet.pts is None:
                    continue  # the demuxer's flush packet
                if packet.pts is None:
                    raise SourceError(
                        f"input {path} has video packets without timestamps; it cannot be cut "
                        "into segments exactly: render it without --ray"
                    )
                pts.append(packet.pts)
                if packet.is_keyframe:
                    keyframes.append(packet.pts)
        except av.FFmpegError as err:
            raise SourceError(f"input {path} is damaged: {err}") from err
        has_audio = bool(container.streams.audio)
    if not pts:
        raise SourceError(f"input {path} holds no video frame")
    pts.sort()
    if len(set(pts)) != len(pts):
        raise SourceError(
            f"input {path} has video frames with equal timestamps; it cannot be cut into "
            "segments exactly: render it without --ray"
        )
    return time_base, pts, sorted(keyframes), has_audio


def cut_segments(
    frame_pts: list[int] | tuple[int, ...],
    keyframes: list[int] | tuple[int, ...],
    time_base: Fraction,
    segment_s: float,
) -> tuple[Segment, ...]:
    """Cut sorted ``frame_pts`` into segments of about ``segment_s`` seconds (see the module
    docstring). Pure: the tests check the every-frame-once property on made-up timestamps."""
    if segment_s <= 0:
        raise ValueError(f"segment_s must be > 0, got {segment_s}")
    if not frame_pts:
        return ()
    key_set = set(keyframes)
    target = round(Fraction(segment_s) / time_base)  # ticks
    slack = target // 2
    starts = [0]  # frame indices where segments start
    i = 0
    n = len(frame_pts)
    while True:
        want = frame_pts[starts[-1]] + target
        i = bisect.bisect_left(frame_pts, want, lo=starts[-1] + 1)
        if i >= n:
            break
        j = i
        while j < n and frame_pts[j] not in key_set and frame_pts[j] < want + slack:
            j += 1
        if j >= n:
            break
        cut = j if frame_pts[j] in key_set else i
        starts.append(cut)
    segments = []
    for k, first in enumerate(starts):
        last = starts[k + 1] if k + 1 < len(starts) else n
        segments.append(
            Segment(
                index=k,
                start_pts=frame_pts[first],
                end_pts=frame_pts[last] if last < n else None,
                first_frame=first,
                frames=last - first,
            )
        )
    return tuple(segments)


def plan_video(path: str | Path, segment_s: float) -> VideoPlan:
    """Probe ``path`` and cut it into segments of about ``segment_s`` seconds."""
    time_base, pts, keyframes, has_audio = probe_video(path)
    return VideoPlan(
        path=str(path),
        time_base=time_base,
        frame_pts=tuple(pts),
        segments=cut_segments(pts, keyframes, time_base, segment_s),
        has_audio=has_audio,
    )
