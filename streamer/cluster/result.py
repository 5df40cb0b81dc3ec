"""What a distributed render reports: progress while it runs, a result (and summary) after."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class JobProgress:
    """The whole job at one moment (what the progress bar shows)."""

    frames_done: int
    frames_total: int
    segments_done: int
    segments_total: int
    retries: int
    elapsed_s: float
    workers: dict[int, tuple[int, int]] = field(default_factory=dict)  # pid -> (segment, frames)

    @property
    def fps(self) -> float:
        return self.frames_done / self.elapsed_s if self.elapsed_s > 0 else 0.0


@dataclass
class VideoOutcome:
    """One input's fate."""

    input: str
    output: str
    frames: int = 0
    segments: int = 0
    reused: int = 0
    frames_rendered: int = 0  # this run (the rest came from reused segments)
    skipped: bool = False
    audio_streams: int = 0
    join_s: float = 0.0
    error: str | None = None  # why it failed (one line); None: rendered or skipped


@dataclass
class ClusterRenderResult:
    """What a distributed render did (``summary()`` is what the command prints)."""

    videos: list[VideoOutcome]
    workers: int = 0
    nodes: int = 0
    device: str = ""
    retries: int = 0
    untrained: bool = False
    stage_s: dict[str, float] = field(default_factory=dict)
    worker_setup_s: list[float] = field(default_factory=list)
    segment_s: list[float] = field(default_factory=list)

    interrupted_by: int | None = None

    @property
    def rendered(self) -> list[VideoOutcome]:
        """The videos this run rendered (not skipped, not failed)."""
        return [v for v in self.videos if not v.skipped and v.error is None]

    @property
    def failed(self) -> list[VideoOutcome]:
        return [v for v in self.videos if v.error is not None]

    @property
    def frames(self) -> int:
        return sum(v.frames for v in self.rendered)

    @property
    def segments_rendered(self) -> int:
        return sum(v.segments - v.reused for v in self.rendered)

    @property
    def segments_reused(self) -> int:
        return sum(v.reused for v in self.rendered)

    def failures(self) -> list[str]:
        """One line per failed input: ``INPUT: why`` (what the command prints last)."""
        return [f"{v.input}: {v.error}" for v in self.failed]

    def summary(self) -> str:
        rendered = self.rendered
        skipped = sum(v.skipped for v in self.videos)
        if not rendered:
            if self.failed:
                return f"nothing rendered: {len(self.failed)} input(s) failed"
            return f"nothing to render: {skipped} complete output(s) skipped"
        total = sum(self.stage_s.values())
        target = rendered[0].output if len(rendered) == 1 else f"{len(rendered)} outputs"
        audio = sum(v.audio_streams for v in rendered)
        now = sum(v.frames_rendered for v in rendered)
        lines = [
            f"rendered {now} frames on Ray in {total:.1f} s "
            f"({now / total if total else 0:.2f} fps) -> {target}"
            + (f" ({self.frames} frames with the reused ones)" if now != self.frames else "")
            + (f" (audio: {audio} stream(s) copied)" if audio else ""),
            f"workers: {self.workers} ({self.device}) on {self.nodes} node(s); segments: {self.segments_rendered} "
            f"rendered, {self.segments_reused} reused; retries: {self.retries}"
            + (f"; {skipped} complete output(s) skipped" if skipped else ""),
            "stage time: " + ", ".join(f"{k} {v:.1f} s" for k, v in self.stage_s.items()),
        ]
        if self.worker_setup_s:
            lines.append(
                f"per worker: model + style setup {max(self.worker_setup_s):.2f} s; per segment "
                f"{_mean(self.segment_s):.2f} s on average"
            )
        if self.untrained:
            lines.append("NOTE: untrained model (random weights): this output is NOT a stylization")
        return "\n".join(lines)


def _mean(values: list[float]) -> float:
    return sum(values) / len(values) if values else 0.0
