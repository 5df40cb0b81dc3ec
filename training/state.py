"""Training checkpoints: the full state of a run, saved without pickle and read back checked.

A training checkpoint (format ``stylestream-train``) is one safetensors file: the model's
tensors (``model/...``), the optimizer's moment tensors (``optimizer/<param>/<name>``) and the
RNG states (``rng/...``) as tensors; the step, the world size, the TrainConfig, the optimizer's
param groups and scalars, the GradScaler and the Python/NumPy RNG states as JSON in its metadata.
Loading one can therefore never run code. Files are written atomically (a crash never leaves a
torn checkpoint under the real name) as ``output_dir/checkpoints/step_00005000.safetensors``.
"""

from __future__ import annotations

import json
import random
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import SafetensorError
from torch import Tensor, nn

from adaattn_video.checkpoint import read_safetensors, write_safetensors
from adaattn_video.errors import CheckpointError
from training.config import TrainConfig
from training.distributed import unwrap_model

STATE_FORMAT = "stylestream-train"
STATE_FORMAT_VERSION = "1"
CHECKPOINT_DIR = "checkpoints"
_CHECKPOINT_NAME = re.compile(r"step_(\d+)\.safetensors")
# Fields that may change between a run and its resumption without changing the losses.
RESUME_FREE_FIELDS = frozenset(
    {"max_steps", "checkpoint_every", "keep_checkpoints", "log_every", "sample_every",
     "tensorboard", "resume", "num_workers", "output_dir", "export_name", "device"}
)  # fmt: skip


class TrainingStateError(CheckpointError):
    """A training checkpoint is missing, unreadable, or does not fit this run."""


def checkpoint_path(output_dir: str | Path, step: int) -> Path:
    """``output_dir/checkpoints/step_<step, 8 digits>.safetensors``."""
    return Path(output_dir) / CHECKPOINT_DIR / f"step_{step:08d}.safetensors"


def list_checkpoints(output_dir: str | Path) -> list[tuple[int, Path]]:
    """(step, path) of every training checkpoint in ``output_dir``, oldest first."""
    folder = Path(output_dir) / CHECKPOINT_DIR
    found = []
    if folder.is_dir():
        for path in folder.iterdir():
            match = _CHECKPOINT_NAME.fullmatch(path.name)
            if match:
                found.append((int(match.group(1)), path))
    return sorted(found)


def changed_settings(saved: TrainConfig, current: TrainConfig) -> list[str]:
    """Config fields that differ between a checkpoint and this run and change the losses (a
    resumption with any of them is not an exact continuation)."""
    now = current.to_dict()
    return sorted(
        k for k, v in saved.to_dict().items() if k not in RESUME_FREE_FIELDS and now.get(k) != v
    )


@dataclass
class TrainingState:
    """What a training checkpoint holds (see :func:`save_training_state`)."""

    step: int
    config: TrainConfig
    model: dict[str, Tensor]
    optimizer: dict[str, Any]
    scaler: dict[str, Any]
    rng: dict[str, Any]
    world_size: int


def _json_default(value: Any) -> Any:
    if isinstance(value, tuple):
        return list(value)
    if isinstance(value, Tensor) and value.numel() == 1:
        return value.item()
    raise TypeError(f"cannot store {type(value).__name__} in a training checkpoint")


def save_training_state(
    path: Path,
    *,
    step: int,
    config: TrainConfig,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    scaler: torch.amp.GradScaler,
    world_size: int,
) -> Path:
    """Write a training checkpoint atomically: tensors in safetensors, the rest as JSON in its
    metadata (no pickle anywhere, so loading one can never run code)."""
    tensors: dict[str, Tensor] = {
        f"model/{k}": v.detach().cpu().contiguous() for k, v in model.state_dict().items()
    }
    opt_state = optimizer.state_dict()
    scalars: dict[str, dict[str, Any]] = {}
    for param_id, values in opt_state["state"].items():
        for name, value in values.items():
            if isinstance(value, Tensor):
                tensors[f"optimizer/{param_id}/{name}"] = value.detach().cpu().contiguous()
            else:
                scalars.setdefault(str(param_id), {})[name] = value
    tensors["rng/torch"] = torch.get_rng_state()
    if torch.cuda.is_available():
        for i, state in enumerate(torch.cuda.get_rng_state_all()):
            tensors[f"rng/cuda/{i}"] = state
    np_state = np.random.get_state()
    metadata = {
        "format": STATE_FORMAT,
        "format_version": STATE_FORMAT_VERSION,
        "step": str(step),
        "world_size": str(world_size),
        "config": config.to_json(),
        "model_config": unwrap_model(model).config.to_json(),  # type: ignore[union-attr]
        "optimizer": json.dumps(
            {"param_groups": opt_state["param_groups"], "scalars": scalars}, default=_json_default
        ),
        "scaler": json.dumps(scaler.state_dict(), default=_json_default),
        "rng_python": json.dumps(random.getstate(), default=_json_default),
        "rng_numpy": json.dumps(
            [
                np_state[0],
                np_state[1].tolist(),
                int(np_state[2]),
                int(np_state[3]),
                float(np_state[4]),
            ]
        ),
    }
    return write_safetensors(path, tensors, metadata)


def load_training_state(path: str | Path) -> TrainingState:
    """Read a checkpoint written by :func:`save_training_state` (checked for format)."""
    path = Path(path)
    if not path.is_file():
        raise TrainingStateError(f"training checkpoint {path} does not exist")
    try:
        tensors, metadata = read_safetensors(path)
    except (SafetensorError, OSError, ValueError, RuntimeError) as err:
        raise TrainingStateError(f"{path}: not a readable training checkpoint ({err})") from err
    if metadata.get("format") != STATE_FORMAT:
        raise TrainingStateError(
            f"{path}: not a training checkpoint (format={metadata.get('format')!r}); "
            "to fine-tune from an exported model use init_from"
        )
    if metadata.get("format_version") != STATE_FORMAT_VERSION:
        raise TrainingStateError(
            f"{path}: training checkpoint version {metadata.get('format_version')!r} is not "
            f"supported (expected {STATE_FORMAT_VERSION})"
        )
    try:
        opt_meta = json.loads(metadata["optimizer"])
        state: dict[int, dict[str, Any]] = {}
        for key, tensor in tensors.items():
            if key.startswith("optimizer/"):
                _, param_id, name = key.split("/", 2)
                state.setdefault(int(param_id), {})[name] = tensor
        for param_id, values in opt_meta["scalars"].items():
            state.setdefault(int(param_id), {}).update(values)
        rng: dict[str, Any] = {
            "torch": tensors["rng/torch"],
            "cuda": [tensors[k] for k in sorted(k for k in tensors if k.startswith("rng/cuda/"))],
            "python": json.loads(metadata["rng_python"]),
            "numpy": json.loads(metadata["rng_numpy"]),
        }
        return TrainingState(
            step=int(metadata["step"]),
            config=TrainConfig.from_json(metadata["config"]),
            model={k[len("model/") :]: v for k, v in tensors.items() if k.startswith("model/")},
            optimizer={"state": state, "param_groups": opt_meta["param_groups"]},
            scaler=json.loads(metadata["scaler"]),
            rng=rng,
            world_size=int(metadata["world_size"]),
        )
    except (KeyError, ValueError, TypeError) as err:
        raise TrainingStateError(f"{path}: training checkpoint is incomplete ({err})") from err


def restore_rng(rng: dict[str, Any]) -> None:
    """Put back the global RNG states (nothing in training draws from them; restored so code
    added later that does continues exactly too)."""
    torch.set_rng_state(rng["torch"])
    if torch.cuda.is_available() and len(rng["cuda"]) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(rng["cuda"])
    version, internal, gauss = rng["python"]
    random.setstate((version, tuple(internal), gauss))
    name, keys, pos, has_gauss, cached = rng["numpy"]
    np.random.set_state((name, np.array(keys, dtype=np.uint32), pos, has_gauss, cached))
