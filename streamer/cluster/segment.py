"""One segment of a video rendered with the ordinary render pipeline.

:class:`SegmentSource` is a :class:`~streamer.sources.file.FileSource` limited to one
segment's pts range: timestamps shifted to start at 0 (exactly as ``--start`` shifts them, by
the segment's ``start_pts``), frame numbers those of the whole video (PNG names), so that the
parts of a video rendered apart join into exactly what a single render writes.
:func:`render_segment` runs :func:`streamer.render.render` on it:

- MP4 output: the segment is encoded (video only) into ``segment_NNNNN.mp4`` in a work
  folder, with the encoder settings of the whole job, and the file's bytes are the result. Its
  timestamps start at 0 (the joiner adds the segment's start back): an MP4 whose first frame is
  not at 0 holds that delay as an edit list in milliseconds, which would move a start such as
  28/24 s by a fraction of a tick;
- image output: the frames are written as PNG (or the pattern's format) into a work folder
  under their final names, and ``{name: bytes}`` is the result.

Both are checked against the plan: a worker that decodes a different number of frames than the
plan counted raises instead of producing a video with a hole or a duplicate.
"""

from __future__ import annotations

import dataclasses
import hashlib
import shutil
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

from adaattn_video.errors import StylestreamError
from adaattn_video.stylizer import FrameStylizer
from streamer.cluster.plan import Segment
from streamer.frames import Frame, FrameSource, SourceCounters, SourceInfo
from streamer.guard import atomic_output
from streamer.render import RenderConfig, render
from streamer.sinks.images import resolve_pattern
from streamer.sources.file import FileSource, FileSourceConfig
from streamer.stats import StatsSnapshot


class SegmentMismatchError(StylestreamError, RuntimeError):
    """A worker decoded other frames than the plan counted (the input changed, or the decoder
    disagrees with the demuxer)."""


class SegmentFailedError(StylestreamError, RuntimeError):
    """A segment could not be rendered because of its input (damaged, unreadable): one line
    naming the input, never a worker's temporary file. Built from a message only, so Ray can
    send it back to the driver (an error with more constructor arguments cannot be unpickled
    there and arrives as a page of traceback instead)."""

    def __init__(self, message: str) -> None:
        super().__init__(message)


def segment_error(err: StylestreamError, input: str, segment: Segment, work: Path) -> str:
    """The one line a failed segment reports: the input's own error (a damaged input's message,
    without the "frames rendered before it are in <temporary file>" the single render adds),
    and the input named when the message does not name it."""
    from streamer.pipeline import PipelineUserError
    from streamer.sources import InputDamagedError

    cause = err.__cause__
    if isinstance(err, InputDamagedError) and isinstance(cause, PipelineUserError):
        err = cause.error  # the source's own message
    message = str(err).replace(str(work), "<segment>")
    if input not in message:
        message = f"input {input} (segment {segment.index}): {message}"
    return message


class SegmentSource(FrameSource):
    """The frames of one segment of a video file: pts from the segment start (input time
    base), frame numbers of the whole video.

    Seeks to the keyframe at or before the segment start (through :class:`FileSource`'s
    ``start_s``) and stops before ``end_pts``. ``info().audio_path`` is None: audio is copied
    once, by the joiner.
    """

    def __init__(self, path: str, segment: Segment, time_base: Fraction) -> None:
        self.segment = segment
        start_s = float(segment.start_pts * time_base)
        duration_s = (
            None
            if segment.end_pts is None
            else float((segment.end_pts - segment.start_pts) * time_base)
        )
        self._file = FileSource(FileSourceConfig(path, start_s=start_s, duration_s=duration_s))
        # FileSource rounds the seconds back to ticks; check that they land on the planned pts
        start = round(Fraction(start_s) / time_base)
        if start != segment.start_pts or (
            duration_s is not None
            and start + round(Fraction(duration_s) / time_base) != segment.end_pts
        ):
            raise SegmentMismatchError(
                f"segment {segment.index} of {path}: its pts range does not survive the "
                "conversion to seconds (time base too fine): render without --ray"
            )
        self.frames_read = 0

    @property
    def live(self) -> bool:
        return False

    def open(self) -> None:
        self._file.open()

    def close(self) -> None:
        self._file.close()

    def info(self) -> SourceInfo:
        return dataclasses.replace(
            self._file.info(), expected_frames=self.segment.frames, audio_path=None
        )

    def counters(self) -> SourceCounters:
        return SourceCounters(read=self.frames_read)

    def __iter__(self) -> Iterator[Frame]:
        seg = self.segment
        self.frames_read = 0
        for frame in self._file:
            if self.frames_read >= seg.frames:
                raise SegmentMismatchError(
                    f"segment {seg.index}: decoded more than the {seg.frames} frames planned "
                    "(did the input change?)"
                )
            yield dataclasses.replace(frame, index=seg.first_frame + frame.index)
            self.frames_read += 1
        if self.frames_read != seg.frames:
            raise SegmentMismatchError(
                f"segment {seg.index}: decoded {self.frames_read} frames, the plan counted "
                f"{seg.frames} (did the input change?)"
            )


@dataclass(frozen=True)
class SegmentResult:
    """What one rendered segment produced.

    Attributes:
        index: the segment's index.
        frames: frames rendered.
        files: ``{file name: bytes}`` (one ``.mp4``, or the frames' images); empty when the
            worker wrote them to ``shared_dir`` itself.
        sha256: digest over the names and bytes of the files, in name order (what ``--resume``
            checks a finished segment against).
        seconds: time the render took (decode + stylize + encode, overlapped).
    """

    index: int
    frames: int
    files: dict[str, bytes]
    sha256: str
    seconds: float


def segment_file_name(segment: Segment) -> str:
    return f"segment_{segment.index:05d}.mp4"


def files_digest(files: dict[str, bytes]) -> str:
    """sha256 over the (name, bytes) pairs in name order."""
    digest = hashlib.sha256()
    for name in sorted(files):
        digest.update(name.encode() + b"\0" + len(files[name]).to_bytes(8, "little"))
        digest.update(files[name])
    return digest.hexdigest()


def render_segment(
    config: RenderConfig,
    segment: Segment,
    time_base: Fraction,
    stylizer: FrameStylizer,
    *,
    shared_dir: str | None = None,
    monitor: Callable[[StatsSnapshot], None] | None = None,
) -> SegmentResult:
    """Render ``segment`` of ``config.input`` with ``stylizer``.

    With ``shared_dir`` the files are written there (a folder every node sees) and the result
    carries no bytes; else they come back in the result (through Ray's object store).
    """
    work = Path(tempfile.mkdtemp(prefix=f"stylestream-seg{segment.index:05d}-"))
    try:
        if config.writes_images:
            target = str(work / resolve_pattern(config.output).name)
        else:
            target = str(work / segment_file_name(segment))
        seg_config = dataclasses.replace(
            config, output=target, overwrite=True, crash_safe=False, start_s=0.0, duration_s=None
        )
        source = SegmentSource(config.input, segment, time_base)
        try:
            result = render(seg_config, progress=False, stylizer=stylizer, monitor=monitor,
                            source=source)  # fmt: skip
        except SegmentFailedError:
            raise
        except StylestreamError as err:
            raise SegmentFailedError(segment_error(err, config.input, segment, work)) from None
        if result.stats.frames_out != segment.frames:
            raise SegmentMismatchError(
                f"segment {segment.index}: rendered {result.stats.frames_out} frames, "
                f"expected {segment.frames}"
            )
        files = {p.name: p.read_bytes() for p in sorted(work.iterdir()) if p.is_file()}
        digest = files_digest(files)
        if shared_dir is not None:
            for name, data in files.items():
                write_atomic(Path(shared_dir) / name, data)
            files = {}
        return SegmentResult(
            index=segment.index,
            frames=result.stats.frames_out,
            files=files,
            sha256=digest,
            seconds=result.stats.elapsed_s,
        )
    finally:
        shutil.rmtree(work, ignore_errors=True)


def write_atomic(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through :func:`streamer.guard.atomic_output` (a temporary name,
    then one rename): a crash never leaves a half-written file."""
    with atomic_output(path) as temp:
        temp.write_bytes(data)
