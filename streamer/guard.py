"""One guard for everything a command writes: checked against everything it reads, before
anything is opened for writing, with one overwrite policy for every command.

The policy:

* An output that exists is replaced only with ``--overwrite`` (a file, PNG frames named like the
  pattern, a key folder's key files); without it the command stops before any work.
* An output never writes over an input, not even with ``--overwrite``: "the same file" is the
  same (st_dev, st_ino) (:func:`os.path.samefile`), so a symlink or a hard link to the input is
  caught too. Inputs are the video / frames, the style images, the weights, the config file,
  the key folder -- whatever the command reads.
* Replacing is atomic: a new output is written under a temporary name in the output's folder
  (:func:`temporary_name`) and renamed onto the final name (``os.replace``) once its first
  output is on disk (an MP4: its first fragment), so a run that fails before that leaves the old
  output exactly as it was.

Every command declares its paths once: fields of its config marked ``option(..., role="input")``
or ``role="output"`` (fields of nested configs and of lists of configs too), plus an ``io_paths() -> (inputs, outputs)`` method on any config (or nested
config) for paths that are not plain fields -- region and mask files, derived outputs such as
``X-style.onnx``. :func:`guard_declared` collects them all and checks every output against every
input (and, with ``overwrite`` given, against ``--overwrite``) before the command opens anything
for writing.

The sinks keep their own exists/writable checks (:func:`streamer.sinks.check_output_file`,
:func:`streamer.sinks.images.check_image_output`); this module adds the overlap check on top and
is what the commands call.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any, Literal

from adaattn_video.config import IMAGE_MODEL, VIDEO_MODEL
from adaattn_video.errors import StylestreamError
from adaattn_video.settings import StylizerSpec, output_size
from streamer.frames import FrameSource, SourceInfo
from streamer.sinks import OutputError, OutputExistsError, check_output_file, is_image_output
from streamer.sinks.images import check_image_output, existing_frames, resolve_pattern

OutputKind = Literal["auto", "file", "frames", "folder"]
InputSpec = str | Path | None


class OutputOverlapError(StylestreamError, ValueError):
    """An output would write over one of the command's inputs."""


# -- inputs -----------------------------------------------------------------------------------
def _is_stream_uri(text: str) -> bool:
    return text.startswith("lavfi:") or "://" in text or text.isdigit()


def input_paths(spec: InputSpec) -> list[Path]:
    """The files and folders one input names: itself (a file or a folder), a folder's files,
    the frames a ``%06d`` pattern or a glob matches and their folder. Streams (``lavfi:``, ``rtsp://``, a camera
    index) and names that match nothing give ``[]``: nothing on disk can be overwritten there."""
    if spec is None or str(spec) == "" or _is_stream_uri(str(spec)):
        return []
    path = Path(str(spec)).expanduser()
    if path.is_file():
        return [path]
    if path.is_dir():
        with contextlib.suppress(OSError):
            return [path, *(p for p in path.iterdir() if p.is_file())]
        return [path]
    name = path.name
    if "%" in name or any(c in name for c in "*?["):
        from streamer.sources.images import list_images

        with contextlib.suppress(StylestreamError, OSError, ValueError, IndexError):
            return [path.parent, *list_images(str(path))]
    return []


def _identity(path: Path) -> tuple[int, int] | None:
    try:
        st = path.stat()
    except OSError:
        return None
    return st.st_dev, st.st_ino


def _input_index(inputs: Iterable[InputSpec]) -> dict[tuple[int, int], Path]:
    index: dict[tuple[int, int], Path] = {}
    for spec in inputs:
        for path in input_paths(spec):
            key = _identity(path)
            if key is not None:
                index.setdefault(key, path)
    return index


# -- outputs ----------------------------------------------------------------------------------
def _output_paths(target: Path, kind: OutputKind, names: Sequence[str]) -> list[Path]:
    """What writing ``target`` would replace or write into, as far as it exists today."""
    if kind == "frames":
        pattern = resolve_pattern(target)
        return [*existing_frames(pattern), pattern.parent]  # a named input frame first
    if kind == "folder":
        return [target / name for name in names]
    return [target]


def refuse_overlap(
    target: str | Path,
    inputs: Iterable[InputSpec],
    *,
    kind: OutputKind = "auto",
    names: Sequence[str] = (),
) -> None:
    """Raise :class:`OutputOverlapError` when writing ``target`` would write over an input
    (the same file, a link to it, an input frame, or into an input frames folder). ``names``:
    the files a ``"folder"`` output writes inside it."""
    target = Path(str(target)).expanduser()
    if kind == "auto":
        kind = "frames" if is_image_output(target) else "file"
    index = _input_index(inputs)
    if not index:
        return
    for path in _output_paths(target, kind, names):
        key = _identity(path)
        if key is None or key not in index:
            continue
        source = index[key]
        if path.is_dir():
            what = f"output {target} writes into the input folder {source}"
            hint = "write the frames to another folder"
        else:
            link = "" if str(path) == str(source) else f" ({path} is the same file)"
            what = f"output {target} would overwrite the input {source}{link}"
            hint = "choose another output name"
        raise OutputOverlapError(f"{what}; {hint} (--overwrite never replaces an input)")


def guard_output(
    target: str | Path,
    *,
    inputs: Iterable[InputSpec],
    overwrite: bool,
    kind: OutputKind = "auto",
    names: Sequence[str] = (),
    make_parents: bool = False,
) -> Path:
    """Check one output before anything is written; returns the resolved target (a file path,
    a frame pattern, or a folder).

    ``kind``: ``"file"``, ``"frames"`` (a folder or ``%06d.png`` pattern), ``"folder"`` (a
    folder of named files such as keys; ``names`` are the files it writes there) or
    ``"auto"`` (frames for a folder / pattern, else a file). ``make_parents``: create a
    file's missing folders (after the overlap check) instead of refusing.

    Raises:
        OutputOverlapError: it would write over an input (``overwrite`` does not matter).
        OutputExistsError: it exists and ``overwrite`` is False.
        OutputError: its folder is missing or not writable.
    """
    path = Path(str(target)).expanduser()
    if kind == "auto":
        kind = "frames" if is_image_output(path) else "file"
    refuse_overlap(path, inputs, kind=kind, names=names)
    if kind == "frames":
        return check_image_output(path, overwrite=overwrite)
    if kind == "folder":
        existing = [path / name for name in names if (path / name).exists()]
        if existing and not overwrite:
            raise OutputExistsError(
                f"{existing[0]} already exists; pass --overwrite to replace the files in {path}"
            )
        return path
    if make_parents and not path.parent.exists():
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise OutputError(f"cannot create output folder {path.parent}: {err}") from err
    return check_output_file(path, overwrite=overwrite)


# -- atomic replacement -----------------------------------------------------------------------
def temporary_name(final: str | Path) -> Path:
    """A hidden name in ``final``'s folder (same file system, so ``os.replace`` is atomic) with
    the same suffix (writers pick the format from it): ``dir/.NAME.partial-PID.SUFFIX``."""
    final = Path(final)
    return final.with_name(f".{final.stem}.partial-{os.getpid()}{final.suffix}")


@contextlib.contextmanager
def atomic_output(final: str | Path) -> Iterator[Path]:
    """Yield a temporary path to write; on success it replaces ``final`` in one step, on an
    error it is removed and ``final`` (an older output) is untouched."""
    final = Path(final)
    temp = temporary_name(final)
    try:
        yield temp
        os.replace(temp, final)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise


# -- declared paths ---------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class CommandPaths:
    """Everything a command reads (``inputs``) and writes (``outputs``)."""

    inputs: tuple[str, ...] = ()
    outputs: tuple[str, ...] = ()


def _as_paths(value: Any) -> list[str]:
    if value is None or value == "":
        return []
    if isinstance(value, (list, tuple)):
        return [p for item in value for p in _as_paths(item)]
    return [str(value)]


def declared_paths(config: Any) -> CommandPaths:
    """The paths ``config`` declares: its ``role="input"``/``"output"`` fields, those of the
    dataclasses it holds (flattened or nested), and what their ``io_paths()`` methods add."""
    inputs: list[str] = []
    outputs: list[str] = []
    for field in dataclasses.fields(config):
        value = getattr(config, field.name)
        items = value if isinstance(value, (list, tuple)) else [value]
        for item in items:  # a nested config, or a list of them (serve's streams)
            if dataclasses.is_dataclass(item) and not isinstance(item, type):
                inner = declared_paths(item)
                inputs += inner.inputs
                outputs += inner.outputs
        role = field.metadata.get("role")
        if role == "input":
            inputs += _as_paths(value)
        elif role == "output":
            outputs += _as_paths(value)
    extra = getattr(config, "io_paths", None)
    if callable(extra):
        more_in, more_out = extra()
        inputs += _as_paths(list(more_in))
        outputs += _as_paths(list(more_out))
    return CommandPaths(tuple(dict.fromkeys(inputs)), tuple(dict.fromkeys(outputs)))


def guard_declared(*configs: Any, overwrite: bool | None = None) -> CommandPaths:
    """Check every output the ``configs`` declare against every input they declare (no
    output writes over an input, ``--overwrite`` or not); with ``overwrite`` given, an
    existing output file is refused without it. Call before anything is opened for writing.
    Several configs: their paths together (serve checks a new stream with the server's
    model settings).

    Raises:
        OutputOverlapError: an output is an input (or a link to one, or inside an input folder).
        OutputExistsError: an output exists and ``overwrite`` is False.
    """
    parts = [declared_paths(config) for config in configs]
    paths = CommandPaths(
        tuple(dict.fromkeys(p for part in parts for p in part.inputs)),
        tuple(dict.fromkeys(p for part in parts for p in part.outputs)),
    )
    for output in paths.outputs:
        refuse_overlap(output, paths.inputs)
        target = Path(output).expanduser()
        if overwrite is False and target.is_file() and not is_image_output(target):
            raise OutputExistsError(f"output {target} exists; pass --overwrite to replace it")
    return paths


def memory_settings(
    spec: StylizerSpec,
    frame_size: tuple[int, int] | None,
    batch: int,
    device: str,
    *,
    queued: int = 2,
) -> dict[str, Any]:
    """The settings :func:`adaattn_video.resources.check_stylizer_memory` needs, from a
    command's :class:`StylizerSpec` and the (height, width) of its input frames: frames are
    stylized at the spec's size for that frame size when it is known already (a camera knows
    it only after its first frame), else at the spec's explicit ``WxH``."""
    size: tuple[int, int] | None = None
    if frame_size is not None and all(frame_size):
        size = output_size(spec.size, *frame_size)
    elif isinstance(spec.size, tuple):
        size = spec.size
    model = None
    if spec.weights is None and (spec.untrained or spec.model == "image"):
        model = VIDEO_MODEL if spec.model == "video" else IMAGE_MODEL
    return {
        "size": size,
        "styles": list(spec.styles),
        "style_size": spec.style_size,
        "batch": batch,
        "precision": spec.precision,
        "device": device,
        "weights": spec.weights,
        "untrained": spec.untrained,
        "model": model,
        "max_memory": spec.max_memory,
        "frames_in_flight": 2 * max(queued, batch),  # decoded + stylized frames queued
    }


def region_images(plan: Any) -> list[str]:
    """The still pictures a :class:`~streamer.regions.specs.RegionPlan` decodes (region
    styles, style masks, still masks) for the memory estimate: each is decoded at its native
    size (bounded by the image reader's pixel limit) before it is resized."""
    files: list[str] = []
    for spec in plan.regions:
        files += [p for p in (spec.style, spec.style_mask) if p is not None]
        if spec.mask is not None and not spec.is_sequence:
            files.append(spec.mask)
    return files


def frame_size(source: FrameSource) -> tuple[int, int] | None:
    """(height, width) of an opened source's frames, None where it is not known yet."""
    info: SourceInfo = source.info()
    return (info.height, info.width) if info.height and info.width else None


def command_inputs(*specs: InputSpec | Sequence[InputSpec]) -> list[InputSpec]:
    """Flatten the inputs a command names (single values and lists, ``None`` skipped)."""
    flat: list[InputSpec] = []
    for spec in specs:
        if spec is None:
            continue
        if isinstance(spec, (list, tuple)):
            flat.extend(s for s in spec if s is not None)
        else:
            flat.append(spec)
    return flat


__all__ = [
    "CommandPaths",
    "OutputOverlapError",
    "atomic_output",
    "command_inputs",
    "declared_paths",
    "frame_size",
    "guard_declared",
    "guard_output",
    "input_paths",
    "memory_settings",
    "refuse_overlap",
    "region_images",
    "temporary_name",
]
