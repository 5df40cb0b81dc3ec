"""The stream contracts: the frame that flows, and what a source, a sink and a stylizer must do.

Sources yield :class:`Frame`; sinks consume them; the pipeline (:mod:`streamer.pipeline`) joins
them through a :class:`Stylizer`. A new input or output is ONE class deriving from
:class:`FrameSource` / :class:`FrameSink`: the abstract methods are its whole obligation (a type
checker lists what is missing), and everything the pipeline, the progress bar, the MP4 sink and
the live status line need to know about a source is in :class:`SourceInfo` and
:class:`SourceCounters` -- nothing is probed by attribute name.
"""

from __future__ import annotations

import abc
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from typing import TYPE_CHECKING, Protocol, runtime_checkable

import numpy as np

if TYPE_CHECKING:
    import torch


@dataclass(frozen=True)
class Frame:
    """One RGB frame.

    Attributes:
        index: 0-based position in the source (after ``--start``), counting dropped frames too.
        image: (H, W, 3) uint8 RGB, C-contiguous.
        pts: presentation timestamp in ``time_base`` units, or None when the source has none.
        time_base: seconds per pts tick, or None.
        capture_time_s: ``time.time()`` when the frame was read (for end-to-end latency).
        style_id: the style the frame was stylized with (set by the pipeline from the
            stylizer's ``style_id``; None before stylizing). Live style switches need it per
            frame: the stylizer's current style may already be the next one when it is written.
    """

    index: int
    image: np.ndarray
    pts: int | None = None
    time_base: Fraction | None = None
    capture_time_s: float = 0.0
    style_id: str | None = None

    @property
    def time_s(self) -> float | None:
        """Presentation time in seconds, or None without pts."""
        if self.pts is None or self.time_base is None:
            return None
        return float(self.pts * self.time_base)


@dataclass(frozen=True)
class SourceInfo:
    """What an opened source knows about its stream (valid after ``open()``).

    Attributes:
        frame_rate: nominal frames per second (a file's average rate, a camera's mode, a
            stream's measured rate), or None when unknown. Sinks use it for rate control and the
            last frame's duration; it never replaces the frames' own pts.
        expected_frames: frames the source will yield as far as it can tell (progress bars),
            or None (live sources, unknown length).
        width / height: frame size in pixels, or None when not known before the first frame.
        time_base: seconds per pts tick of the frames, or None.
        audio_path: a file whose audio streams an output may copy (None: no audio to copy).
    """

    frame_rate: Fraction | None = None
    expected_frames: int | None = None
    width: int | None = None
    height: int | None = None
    time_base: Fraction | None = None
    audio_path: str | None = None

    def __post_init__(self) -> None:
        if self.frame_rate is not None and self.frame_rate <= 0:
            raise ValueError(f"frame_rate must be > 0 or None, got {self.frame_rate}")
        if self.expected_frames is not None and self.expected_frames < 0:
            raise ValueError(f"expected_frames must be >= 0 or None, got {self.expected_frames}")


@dataclass(frozen=True)
class SourceCounters:
    """A source's counters at one moment (status lines, ``get-status``, summaries).

    Attributes:
        read: frames the source read from its input (including ones it dropped itself).
        dropped: frames the source read but replaced by newer ones before the pipeline took
            them (live sources keep only the newest frame).
        reconnects: times a lost stream came back.
        outages: times the stream was lost.
        in_outage: the stream is lost right now (reconnecting).
    """

    read: int = 0
    dropped: int = 0
    reconnects: int = 0
    outages: int = 0
    in_outage: bool = False


class FrameSource(abc.ABC):
    """Something that yields frames; use it in a ``with`` block (``open`` ... ``close``).

    Obligations (abstract): ``live``, ``open``, ``close``, ``__iter__``, ``info``,
    ``counters``. ``interrupt`` has a default (nothing to wake up).
    """

    @property
    @abc.abstractmethod
    def live(self) -> bool:
        """True: the source runs at its own pace and the pipeline drops the OLDEST frame when
        stylizing is slower (latency stays low); False: the pipeline blocks the source and
        loses nothing."""

    @abc.abstractmethod
    def open(self) -> None:
        """Open the input (fail here, fast, with a one-line StylestreamError). Idempotent."""

    @abc.abstractmethod
    def close(self) -> None:
        """Release everything (idempotent; called after errors and interrupts too)."""

    @abc.abstractmethod
    def __iter__(self) -> Iterator[Frame]:
        """The frames, in order. A damaged input yields what it could decode first, then
        raises :class:`streamer.sources.InputDamagedError`."""

    @abc.abstractmethod
    def info(self) -> SourceInfo:
        """What the opened source knows about its stream."""

    @abc.abstractmethod
    def counters(self) -> SourceCounters:
        """The source's counters now (thread-safe: any thread may ask)."""

    def interrupt(self) -> None:  # noqa: B027 - a deliberate no-op default
        """Make a waiting ``__iter__`` return soon (the pipeline calls this when it stops; a
        live source waiting through an outage must not hold the stop up)."""

    def __enter__(self) -> FrameSource:
        self.open()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


class FrameSink(abc.ABC):
    """Something that consumes stylized frames.

    Obligations (abstract): ``write`` and ``close`` (flush and finalize; idempotent; always
    called by the pipeline, also after an error or Ctrl-C). ``end_of_stream`` is optional: the
    pipeline calls it once the source was read to its end without error, before ``close``.
    """

    @abc.abstractmethod
    def write(self, frame: Frame) -> None:
        """Consume one stylized frame."""

    @abc.abstractmethod
    def close(self) -> None:
        """Flush and finalize (idempotent)."""

    def end_of_stream(self) -> None:  # noqa: B027 - a deliberate no-op default
        """The input was read to its end (a sink may then finish differently, e.g. copy the
        input's audio to its end rather than to the last frame written)."""

    def __enter__(self) -> FrameSink:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


@runtime_checkable
class Stylizer(Protocol):
    """What the pipeline needs of a stylizer (:class:`adaattn_video.stylizer.FrameStylizer` and
    :class:`streamer.live.SwitchSafeStylizer` are ones).

    ``device``: where ``stylize_uint8`` computes (CUDA gets pinned-memory transfers).
    ``stylize_uint8``: (B, H, W, 3) uint8 tensor on any device -> (B, H', W', 3) uint8 tensor.
    ``style_id``: the style the LAST call used (each frame is labelled with it).
    """

    @property
    def device(self) -> torch.device: ...

    @property
    def style_id(self) -> str | None: ...

    def stylize_uint8(self, frames: torch.Tensor) -> torch.Tensor: ...
