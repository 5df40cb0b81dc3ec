"""A training run's files: resuming from a training checkpoint, saving one (and pruning old
ones) and exporting the inference checkpoint -- the part of :class:`training.trainer.Trainer`
that reads and writes ``output_dir``. The checkpoint format itself is :mod:`training.state`.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from adaattn_video.checkpoint import save_checkpoint
from adaattn_video.errors import StylestreamError
from training.state import (
    TrainingStateError,
    changed_settings,
    checkpoint_path,
    list_checkpoints,
    load_training_state,
    restore_rng,
    save_training_state,
)

if TYPE_CHECKING:
    from torch import Tensor

    from training.config import TrainConfig
    from training.distributed import DistributedContext

log = logging.getLogger(__name__)


class TrainingDivergedError(StylestreamError, FloatingPointError):
    """The loss or the weights became NaN or infinite."""


DIVERGED_HINT = (
    "resume from the last checkpoint (resume=auto) with a lower lr, grad_clip_norm set, or "
    "precision fp32"
)


class TrainingStateMixin:
    """Resume / checkpoint / export of a :class:`~training.trainer.Trainer` (which sets the
    attributes below before using them)."""

    config: TrainConfig
    ctx: DistributedContext
    model: torch.nn.Module
    optimizer: torch.optim.Optimizer
    scaler: torch.amp.GradScaler
    params: list[Tensor]
    step: int
    resumed_from: Path | None
    encoder_source: str

    def _resume_path(self) -> Path | None:
        resume = self.config.resume
        if resume is None:
            return None
        if resume == "auto":
            found = list_checkpoints(self.config.output_dir)
            if not found:
                if self.ctx.is_main:
                    log.info(
                        "resume=auto: no checkpoint in %s, starting fresh", self.config.output_dir
                    )
                return None
            return found[-1][1]
        return Path(resume).expanduser()

    def load_state(self, path: Path) -> None:
        """Continue from a training checkpoint: model, optimizer, scaler, step, RNG states."""
        state = load_training_state(path)
        changed = changed_settings(state.config, self.config)
        if changed and self.ctx.is_main:
            log.warning(
                "resuming from %s with changed settings %s: not an exact continuation",
                path, changed,
            )  # fmt: skip
        if state.world_size != self.ctx.world_size and self.ctx.is_main:
            log.warning(
                "resuming a %d-process run with %d processes: the data order changes",
                state.world_size, self.ctx.world_size,
            )  # fmt: skip
        if state.step >= self.config.max_steps:
            raise TrainingStateError(
                f"{path} is at step {state.step}, max_steps is {self.config.max_steps}: "
                "nothing left to train (raise max_steps to continue)"
            )
        try:
            self.model.load_state_dict(state.model, strict=True)
            self.optimizer.load_state_dict(state.optimizer)
        except (RuntimeError, ValueError, KeyError) as err:
            raise TrainingStateError(
                f"{path} does not fit this model/optimizer ({str(err).splitlines()[0]})"
            ) from err
        if state.scaler:
            self.scaler.load_state_dict(state.scaler)
        restore_rng(state.rng)
        self.step = state.step
        self.resumed_from = path
        if self.ctx.is_main:
            log.info("resumed from %s at step %d", path, self.step)

    def save_state(self) -> Path | None:
        """Rank 0 writes ``checkpoints/step_N.safetensors`` and prunes old ones."""
        if not self.ctx.is_main:
            return None
        if not all(bool(torch.isfinite(p).all()) for p in self.params):
            raise TrainingDivergedError(
                f"the weights hold NaN or infinite values at step {self.step} (not saved); "
                + DIVERGED_HINT
            )
        path = save_training_state(
            checkpoint_path(self.config.output_dir, self.step),
            step=self.step,
            config=self.config,
            model=self.model,
            optimizer=self.optimizer,
            scaler=self.scaler,
            world_size=self.ctx.world_size,
        )
        log.info("saved training checkpoint %s", path)
        keep = self.config.keep_checkpoints
        if keep:
            for _, old in list_checkpoints(self.config.output_dir)[:-keep]:
                old.unlink(missing_ok=True)
        return path

    def export(self, path: str | Path | None = None) -> Path | None:
        """Rank 0 writes the inference checkpoint (safetensors + ModelConfig) that
        ``stylestream render`` / ``image`` load."""
        if not self.ctx.is_main:
            return None
        path = Path(path) if path else Path(self.config.output_dir) / self.config.export_name
        metadata = {
            "source": "stylestream train",
            "trained_steps": str(self.step),
            "loss_encoder": self.encoder_source,
            "train_config": self.config.to_json(),
        }
        save_checkpoint(self.model, path, metadata)
        if self.config.encoder_weights is None and self.config.allow_random_encoder:
            log.warning("exported %s, trained against a RANDOM encoder: not a stylization", path)
        else:
            log.info("exported the inference checkpoint %s", path)
        return path
