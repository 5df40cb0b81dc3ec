"""The job folder of a distributed render: finished segments and a manifest, for ``--resume``.

One folder per output video (``OUT.mp4.stylestream-job/``; for PNG output
``FRAMES/.stylestream-job/``; inside ``--shared-dir`` when one is given, so every worker can
write its segment there). It holds ``manifest.json`` and, for video output, the finished segment
files ``segment_NNNNN.mp4``. The manifest is rewritten atomically after each finished segment::

    {"version": 1, "fingerprint": "<sha256>", "output": "...", "frames": N,
     "segments": {"3": {"sha256": "...", "frames": 24}, ...}}

The fingerprint covers the input file (absolute path, size, modification time), every render
setting that changes a pixel or a byte (styles, weights, size, alpha, precision, encoder...) and
the segment plan, so ``--resume`` never mixes segments of another input or other settings. A
finished segment is reused only after its bytes hash to the recorded sha256 and (video) its
packets sit at the planned input times. The folder is removed once the output is complete.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from adaattn_video.errors import StylestreamError
from streamer.cluster.join import SegmentInvalidError, verify_segment_file
from streamer.cluster.plan import Segment, VideoPlan
from streamer.cluster.segment import SegmentResult, files_digest, segment_file_name
from streamer.render import RenderConfig
from streamer.sinks.images import resolve_pattern

log = logging.getLogger(__name__)

MANIFEST = "manifest.json"
VERSION = 1
# settings that do not change the output (where it goes, how it is shown, where it runs)
_NEUTRAL_FIELDS = frozenset({"input", "output", "overwrite", "max_queue_frames"})
_NEUTRAL_STYLIZER_FIELDS = frozenset({"device"})


class JobExistsError(StylestreamError, FileExistsError):
    """An interrupted job's folder is there and neither ``--resume`` nor ``--overwrite`` was
    given."""


class JobMismatchError(StylestreamError, ValueError):
    """``--resume`` found a job folder made for another input, other settings or another plan."""


def job_dir_for(config: RenderConfig, output: str, shared_dir: str | None) -> Path:
    """Where the job folder of ``output`` lives (see the module docstring)."""
    if config.writes_images:
        local = resolve_pattern(output).parent / ".stylestream-job"
    else:
        local = Path(f"{output}.stylestream-job")
    if shared_dir is None:
        return local
    tag = hashlib.sha256(str(local.resolve()).encode()).hexdigest()[:12]
    return Path(shared_dir) / f"{Path(output).name.replace('%', '_')}-{tag}.stylestream-job"


def fingerprint(config: RenderConfig, plan: VideoPlan, segment_s: float) -> str:
    """sha256 naming the input file, the output-changing settings and the plan."""
    stat = Path(plan.path).stat()
    settings = {k: v for k, v in dataclasses.asdict(config).items() if k not in _NEUTRAL_FIELDS}
    stylizer = {
        k: v for k, v in settings.pop("stylizer").items() if k not in _NEUTRAL_STYLIZER_FIELDS
    }
    spec = config.stylizer
    # a style or weights file edited in place changes pixels
    stylizer["styles_stat"] = [_stat_of(p) for p in spec.styles]
    stylizer["weights_stat"] = [_stat_of(spec.weights)] if spec.weights else []
    settings["stylizer"] = stylizer
    document = {
        "input": str(Path(plan.path).resolve()),
        "input_size": stat.st_size,
        "input_mtime_ns": stat.st_mtime_ns,
        "images": config.writes_images,
        "settings": settings,
        "segment_s": segment_s,
        "segments": [dataclasses.astuple(s) for s in plan.segments],
    }
    text = json.dumps(_numbers_as_floats(document), sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def _numbers_as_floats(value: object) -> object:
    """18 and 18.0 (a default and the same value from a flag) must give one fingerprint."""
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, dict):
        return {str(k): _numbers_as_floats(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_numbers_as_floats(v) for v in value]
    return str(value)


def _stat_of(path: str) -> list:
    try:
        stat = Path(path).stat()
    except OSError:
        return [str(path)]
    return [str(Path(path).resolve()), stat.st_size, stat.st_mtime_ns]


def read_manifest(manifest: Path) -> dict:
    """A job's ``manifest.json``, validated: ``{"version": int, "fingerprint": str,
    "segments": {segment index: {"sha256": str, "frames": int}}}``; anything else (not JSON,
    not an object, a non-numeric segment key, a record of another shape) is one
    :class:`JobMismatchError` naming the file, so ``--resume`` trusts only what it checked."""
    hint = "pass --overwrite to start over"
    try:
        data = json.loads(manifest.read_text())
    except (OSError, ValueError) as err:
        raise JobMismatchError(f"{manifest} is unreadable ({err}); {hint}") from err
    if not isinstance(data, dict):
        raise JobMismatchError(
            f"{manifest} is not a job manifest (a {type(data).__name__}); {hint}"
        )
    segments = data.get("segments", {})
    version, print_ = data.get("version"), data.get("fingerprint")
    if (
        not isinstance(segments, dict)
        or not isinstance(version, int)
        or not isinstance(print_, str)
    ):
        raise JobMismatchError(
            f"{manifest} is not a job manifest (bad version, fingerprint or segments); {hint}"
        )
    done: dict[int, dict] = {}
    for key, record in segments.items():
        ok = isinstance(key, str) and key.isascii() and key.isdigit() and isinstance(record, dict)
        if not ok or not isinstance(record.get("sha256"), str) or not _count(record.get("frames")):
            raise JobMismatchError(f"{manifest}: segment entry {key!r} is not valid; {hint}")
        done[int(key)] = {"sha256": record["sha256"], "frames": record["frames"]}
    return {"version": version, "fingerprint": print_, "segments": done}


def _count(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


@dataclass
class Job:
    """One output's job folder (see the module docstring)."""

    path: Path
    fingerprint: str
    output: str
    plan: VideoPlan
    done: dict[int, dict] = field(default_factory=dict)
    reused: int = 0

    @classmethod
    def open(
        cls,
        path: Path,
        *,
        fingerprint: str,
        output: str,
        plan: VideoPlan,
        resume: bool,
        overwrite: bool,
    ) -> Job:
        """Start a job in ``path``, or continue the one there when ``resume``.

        Raises:
            JobExistsError: a job folder is there without ``resume``/``overwrite``.
            JobMismatchError: ``resume`` and the folder belongs to another input/settings.
        """
        manifest = path / MANIFEST
        job = cls(path=path, fingerprint=fingerprint, output=output, plan=plan)
        if manifest.is_file() and not resume:
            if not overwrite:
                raise JobExistsError(
                    f"an interrupted --ray job into {output} left {path}; rerun the same "
                    "command with --resume to continue it, or --overwrite to start over"
                )
            shutil.rmtree(path)
        if path.exists() and not path.is_dir():
            raise JobExistsError(
                f"the job folder {path} of {output} is taken by a file; move it away (or give "
                "another output name)"
            )
        if resume and manifest.is_file():
            data = read_manifest(manifest)
            if data["version"] != VERSION or data["fingerprint"] != fingerprint:
                raise JobMismatchError(
                    f"{path} was made for another input, other settings or another "
                    f"--segment-s than this command; rerun it exactly, or pass --overwrite "
                    "to start over"
                )
            job.done = data["segments"]
        try:
            path.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise JobExistsError(f"cannot create the job folder {path}: {err.strerror}") from err
        job._write()
        return job

    def verified_done(self, images_folder: Path | None) -> set[int]:
        """Indices of recorded segments whose files are intact (the others are forgotten)."""
        good = set()
        for segment in self.plan.segments:
            record = self.done.get(segment.index)
            if record is None:
                continue
            try:
                self._verify(segment, record, images_folder)
            except (SegmentInvalidError, OSError) as err:
                log.warning("segment %d cannot be reused (%s): rendering it again",
                            segment.index, err)  # fmt: skip
                continue
            good.add(segment.index)
        self.done = {k: v for k, v in self.done.items() if k in good}
        self.reused = len(good)
        self._write()
        return good

    def _verify(self, segment: Segment, record: dict, images_folder: Path | None) -> None:
        names = self.file_names(segment, images_folder)
        folder = images_folder if images_folder is not None else self.path
        files = {name: (folder / name).read_bytes() for name in names}
        if files_digest(files) != record.get("sha256"):
            raise SegmentInvalidError(f"segment {segment.index}: files differ from the manifest")
        if images_folder is None:
            verify_segment_file(
                self.path / names[0], self.plan.segment_pts(segment), self.plan.time_base
            )

    def file_names(self, segment: Segment, images_folder: Path | None) -> list[str]:
        if images_folder is None:
            return [segment_file_name(segment)]
        name = resolve_pattern(self.output).name
        return [name % i for i in range(segment.first_frame, segment.first_frame + segment.frames)]

    def mark_done(self, result: SegmentResult) -> None:
        self.done[result.index] = {"sha256": result.sha256, "frames": result.frames}
        self._write()

    def segment_path(self, segment: Segment) -> Path:
        return self.path / segment_file_name(segment)

    def finish(self) -> None:
        """The output is complete: the folder is not needed any more."""
        shutil.rmtree(self.path, ignore_errors=True)

    def _write(self) -> None:
        data = {
            "version": VERSION,
            "fingerprint": self.fingerprint,
            "output": self.output,
            "frames": self.plan.frames,
            "segments": {str(k): v for k, v in sorted(self.done.items())},
        }
        partial = self.path / f".{MANIFEST}.partial"
        partial.write_text(json.dumps(data, indent=1))
        os.replace(partial, self.path / MANIFEST)
