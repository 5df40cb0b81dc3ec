"""One INPUT or many: which videos a ``--ray`` render reads and where each one goes.

``stylestream render DIR_OR_GLOB -o OUTDIR/ --ray`` renders every video file of a folder (not
recursive) or every file a glob matches into ``OUTDIR/`` under the same name (``.mp4`` when the
input's container cannot hold the output, e.g. ``.avi``). A single file keeps its ``-o``.
"""

from __future__ import annotations

import glob
from dataclasses import dataclass
from pathlib import Path

from adaattn_video.errors import StylestreamError
from streamer.sinks import VIDEO_SUFFIXES
from streamer.sources import LAVFI_PREFIX

VIDEO_INPUT_SUFFIXES = frozenset(
    {".mp4", ".m4v", ".mov", ".mkv", ".webm", ".avi", ".ts", ".mts", ".m2ts", ".flv", ".mpg",
     ".mpeg", ".wmv", ".3gp"}
)  # fmt: skip


class ClusterInputError(StylestreamError, ValueError):
    """An INPUT / output combination ``--ray`` cannot render."""


@dataclass(frozen=True)
class Work:
    """One video to render: its input file and its output (file or frames target)."""

    input: str
    output: str


def expand_work(input: str, output: str) -> list[Work]:
    """The videos of ``input`` and their outputs (many inputs always write videos, even
    though ``OUTDIR/`` alone would name a frames folder).

    Raises:
        ClusterInputError: a lavfi source or image folder (render those without ``--ray``), a
            folder/glob without videos, or many inputs into one file.
    """
    if input.startswith(LAVFI_PREFIX):
        raise ClusterInputError(
            "--ray renders video files; a lavfi source has no end to cut: render it without --ray"
        )
    path = Path(input)
    if path.is_file():
        return [Work(input, output)]
    if path.is_dir():
        found = sorted(p for p in path.iterdir() if p.is_file())
    elif any(c in input for c in "*?["):
        found = sorted(Path(p) for p in glob.glob(input) if Path(p).is_file())
    else:
        return [Work(input, output)]  # missing: the planner says so in one line
    videos = [p for p in found if p.suffix.lower() in VIDEO_INPUT_SUFFIXES]
    if not videos:
        raise ClusterInputError(
            f"{input} holds no video file ({', '.join(sorted(VIDEO_INPUT_SUFFIXES))}); an image "
            "folder renders without --ray"
        )
    out_dir = Path(output)
    if not (output.endswith("/") or out_dir.is_dir()) or "%" in out_dir.name:
        raise ClusterInputError(
            f"{input} names {len(videos)} video(s): -o must be a folder (e.g. -o {out_dir}/), "
            f"got {output}"
        )
    names = [_output_name(p) for p in videos]
    if len(set(names)) != len(names):
        raise ClusterInputError(
            f"{input}: two inputs would write the same output name in {out_dir}; rename one"
        )
    return [Work(str(p), str(out_dir / name)) for p, name in zip(videos, names, strict=True)]


def _output_name(path: Path) -> str:
    return path.name if path.suffix.lower() in VIDEO_SUFFIXES else path.stem + ".mp4"
