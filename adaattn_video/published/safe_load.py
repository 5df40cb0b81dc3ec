"""Opening one untrusted published ``.pth`` file: ``torch.load(weights_only=True)`` only.

The safe unpickler refuses any pickle that would import code (``os.system`` and the like); the
result is then checked to be a plain mapping of string names to tensors.
"""

from __future__ import annotations

import hashlib
import io
import pickle
import re
import warnings
from collections.abc import Mapping
from pathlib import Path

import torch
from torch import Tensor

from adaattn_video.errors import CheckpointError
from adaattn_video.published.text import first_line


def _unpickling_reason(err: Exception) -> str:
    text = str(err)
    match = re.search(r"GLOBAL ([\w.]+)", text)
    if match:
        return (
            f"it is a pickle that imports {match.group(1)} (it would run code when loaded), "
            "not a plain state dict of tensors"
        )
    match = re.search(r"(Unsupported [^\n.]*)", text)
    detail = f" ({match.group(1).strip()})" if match else ""
    return f"not a PyTorch state-dict file: the safe loader rejected it{detail}"


def load_state_dict_safe(data: bytes | Path, location: str) -> dict[str, Tensor]:
    """Unpickle ``data`` (bytes or a file path) with ``torch.load(weights_only=True)`` and check
    it is a state dict.

    Returns a plain dict of name -> tensor with any ``module.`` prefix stripped.

    Raises:
        CheckpointError: empty, truncated or corrupt file; a pickle that carries code; anything
            that is not a mapping of string keys to tensors.
    """
    size = data.stat().st_size if isinstance(data, Path) else len(data)
    if size == 0:
        raise CheckpointError(f"{location}: the file is empty (0 bytes); download it again")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # pickle-protocol notices from the safe unpickler
            source = data if isinstance(data, Path) else io.BytesIO(data)
            obj = torch.load(source, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        raise CheckpointError(f"{location}: refused: {_unpickling_reason(err)}") from err
    except Exception as err:  # untrusted bytes: torch raises many types for a torn file
        raise CheckpointError(
            f"{location}: cannot be read, the file is truncated or corrupt "
            f"({type(err).__name__}: {first_line(err)}); download it again"
        ) from err
    if isinstance(obj, Tensor):
        raise CheckpointError(f"{location}: holds a single tensor, not a state dict")
    if not isinstance(obj, Mapping):
        raise CheckpointError(
            f"{location}: holds a {type(obj).__name__}, not a state dict (a mapping of names "
            "to tensors)"
        )
    if not obj:
        raise CheckpointError(f"{location}: holds an empty dict, not a state dict")
    state: dict[str, Tensor] = {}
    for key, value in obj.items():
        if not isinstance(key, str):
            raise CheckpointError(f"{location}: key {key!r} is not a string: not a state dict")
        if not isinstance(value, Tensor):
            raise CheckpointError(
                f"{location}: key {key!r} holds a {type(value).__name__}, not a tensor: "
                "not a state dict"
            )
        state[key.removeprefix("module.")] = value
    return state


def sha256_of(data: bytes | Path) -> str:
    """Hex sha256 of bytes or of a file (read in 1 MiB blocks)."""
    if isinstance(data, Path):
        digest = hashlib.sha256()
        with data.open("rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
        return digest.hexdigest()
    return hashlib.sha256(data).hexdigest()
