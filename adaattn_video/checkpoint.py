"""The project's own checkpoint format: one safetensors file that rebuilds its model.

Metadata (all strings, as safetensors requires):
    format = "stylestream", format_version = "1", model_config = ModelConfig JSON,
    plus free-form provenance (``source``, ``trained_steps``...).

safetensors holds tensors only, so loading a file can never run code (unlike pickle).
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Mapping
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file
from torch import Tensor

from adaattn_video.config import ModelConfig
from adaattn_video.errors import CheckpointError, MissingWeightsError
from adaattn_video.model import StyleTransferModel, build_model, init_untrained_

log = logging.getLogger(__name__)

FORMAT = "stylestream"
FORMAT_VERSION = "1"
CACHE_ENV = "STYLESTREAM_CACHE"
DEFAULT_CHECKPOINT_NAME = "video.safetensors"


def cache_dir() -> Path:
    """Where downloaded/imported weights live: ``$STYLESTREAM_CACHE`` or ``~/.cache/stylestream``."""
    env = os.environ.get(CACHE_ENV)
    if env:
        return Path(env).expanduser()
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "stylestream"


def save_checkpoint(
    model: StyleTransferModel, path: str | Path, metadata: Mapping[str, str] | None = None
) -> Path:
    """Write ``model``'s weights and config to ``path`` atomically (temp file, then rename)."""
    path = Path(path)
    meta = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "model_config": model.config.to_json(),
    }
    meta.update({str(k): str(v) for k, v in (metadata or {}).items()})
    tensors = {k: v.detach().float().cpu().contiguous() for k, v in model.state_dict().items()}
    return write_safetensors(path, tensors, meta)


def write_safetensors(
    path: str | Path, tensors: Mapping[str, Tensor], metadata: Mapping[str, str]
) -> Path:
    """Write a safetensors file atomically: a temporary file renamed over ``path`` only when
    complete, so a crash never leaves a torn checkpoint under the real name."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        save_file(dict(tensors), str(tmp), metadata=dict(metadata))
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def read_safetensors(path: str | Path) -> tuple[dict[str, Tensor], dict[str, str]]:
    """Tensors and metadata of a safetensors file (raises the reader's errors: ``SafetensorError``,
    ``OSError``, ``ValueError``, ``RuntimeError``; callers turn them into one-line errors)."""
    with safe_open(str(path), framework="pt") as handle:
        metadata = dict(handle.metadata() or {})
    return load_file(str(path)), metadata


def read_checkpoint(path: str | Path) -> tuple[dict[str, Tensor], dict[str, str]]:
    """Tensors and metadata of a stylestream safetensors file, checked for format only."""
    path = Path(path)
    if not path.is_file():
        raise MissingWeightsError(f"weights file {path} does not exist")
    try:
        tensors, metadata = read_safetensors(path)
    except (SafetensorError, OSError, ValueError, RuntimeError) as err:
        raise CheckpointError(
            f"{path}: not a readable safetensors file ({err}); published .pth files must first go "
            "through `stylestream weights import`"
        ) from err
    if metadata.get("format") != FORMAT:
        raise CheckpointError(
            f"{path}: not a stylestream checkpoint (metadata format={metadata.get('format')!r}); "
            "import published files with `stylestream weights import`"
        )
    if metadata.get("format_version") != FORMAT_VERSION:
        raise CheckpointError(
            f"{path}: checkpoint format version {metadata.get('format_version')!r} is not supported "
            f"(expected {FORMAT_VERSION}); upgrade stylestream"
        )
    return tensors, metadata


def natural_key(key: str) -> list[int | str]:
    """Sort key that orders embedded numbers by value (``decoder.2`` before ``decoder.10``)."""
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", key)]


def check_state(
    state: Mapping[str, object],
    expected: Mapping[str, tuple[int, ...]],
    location: str,
    *,
    what: str = "the model",
    missing_hint: str = "",
) -> None:
    """Check that ``state`` holds exactly the keys of ``expected``, each a finite float tensor of
    the expected shape; the one state-dict check for our checkpoints and the published files.

    Args:
        state: name -> tensor, in the file's own key names (so messages quote the file).
        expected: name -> shape the model needs.
        location: the file (or file:member) that messages start with.
        what: who needs the keys (``the video model``), for the messages.
        missing_hint: appended to the missing-keys message (e.g. how deep a VGG file goes).

    Raises:
        CheckpointError: the first problem found, in one line.
    """
    missing = sorted(set(expected) - set(state), key=natural_key)
    extra = sorted(set(state) - set(expected), key=natural_key)
    if missing:
        raise CheckpointError(
            f"{location}: missing {len(missing)} key(s) {what} needs, e.g. {missing[:3]}"
            f"{missing_hint}"
        )
    if extra:
        raise CheckpointError(
            f"{location}: {len(extra)} unexpected key(s) for {what}, e.g. {extra[:3]}; "
            "is it the right file?"
        )
    for key in sorted(expected, key=natural_key):
        tensor = state[key]
        if not isinstance(tensor, Tensor):
            raise CheckpointError(f"{location}: {key} is a {type(tensor).__name__}, not a tensor")
        if tuple(tensor.shape) != tuple(expected[key]):
            raise CheckpointError(
                f"{location}: {key} has shape {tuple(tensor.shape)}, {what} expects "
                f"{tuple(expected[key])}"
            )
        if not tensor.is_floating_point():
            raise CheckpointError(f"{location}: {key} has dtype {tensor.dtype}, expected float")
        if not torch.isfinite(tensor).all():
            raise CheckpointError(f"{location}: {key} holds NaN or infinite values")


def load_state_strict(model: StyleTransferModel, state: Mapping[str, Tensor], source: str) -> None:
    """Copy ``state`` into ``model`` after :func:`check_state` (every key and shape exact)."""
    expected = {key: tuple(value.shape) for key, value in model.state_dict().items()}
    check_state(state, expected, source, what=f"the {model.config.variant} model")
    model.load_state_dict({k: v.float() for k, v in state.items()}, strict=True)


def load_checkpoint(path: str | Path) -> StyleTransferModel:
    """Rebuild the model a stylestream safetensors file describes, with its weights."""
    tensors, metadata = read_checkpoint(path)
    try:
        config = ModelConfig.from_json(metadata["model_config"])
    except (KeyError, ValueError, TypeError) as err:
        raise CheckpointError(
            f"{path}: model config in the metadata cannot be used ({err}); this stylestream "
            "cannot build that model"
        ) from err
    model = build_model(config)
    load_state_strict(model, tensors, str(path))
    return model.eval()


def default_checkpoint() -> Path:
    return cache_dir() / DEFAULT_CHECKPOINT_NAME


def open_model(
    weights: str | Path | None, *, untrained: bool = False, config: ModelConfig | None = None
) -> StyleTransferModel:
    """The model the command line should use.

    ``weights`` if given; else the cached default (``stylestream weights download``/``import``
    put it there); else, only with ``untrained=True``, random weights (loud warning: output is
    NOT a stylization; for benchmarks and pipeline smoke runs).
    """
    if untrained:
        if weights is not None:
            raise ValueError("give either --weights or --untrained, not both")
        log.warning(
            "UNTRAINED MODEL: random weights, the output is NOT a stylization "
            "(use only for benchmarks and pipeline smoke runs)"
        )
        # The same random model in every run, so runs are comparable.
        return init_untrained_(build_model(config or ModelConfig())).eval()
    if weights is not None:
        return load_checkpoint(weights)
    default = default_checkpoint()
    if default.is_file():
        return load_checkpoint(default)
    raise MissingWeightsError(
        f"no weights given and none in the cache ({default}): run `stylestream weights download` "
        "(needs internet), or `stylestream weights import DIR_OR_ZIP` with the published files, "
        "or pass --weights FILE.safetensors (--untrained gives random weights for smoke tests)"
    )
