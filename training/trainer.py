"""Training the temporally stable AdaAttN (Liu et al., "AdaAttN", ICCV 2021, video variant):
the training loop; checkpoints of the run's state are :mod:`training.state`.

    result = train(load_train_config("configs/train_smoke.yaml"))

What is trained: the attention projections f/g/h and the decoder of a
:class:`~adaattn_video.model.VideoAdaAttN` (cosine attention by default); its VGG encoder is
frozen. The losses look through a separate frozen VGG to relu5_1 of the same family.

Reproducibility: every random draw (model init, data crops, pair perturbations, subsampled
positions) comes from an explicit ``torch.Generator`` seeded from ``(seed, step, rank)``, and
the learning rate is a pure function of the step. A training checkpoint holds the model,
the optimizer's moments, the GradScaler, the step, the config and the RNG states, so a resumed
run continues with exactly the losses the uninterrupted run would have had (bitwise on CPU;
on CUDA with ``deterministic: true``).

Files under ``output_dir``:
    checkpoints/step_00005000.safetensors   training state (:mod:`training.state`)
    tensorboard/                            scalars and sample grids
    video.safetensors (export_name)         the inference checkpoint every command loads
"""

from __future__ import annotations

import logging
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor
from torch.utils.data import DataLoader

from adaattn_video.settings import resolve_precision
from training.config import TrainConfig
from training.data import StepSampler, TrainingSet, VideoFramePairs, build_training_set, mix_seed
from training.distributed import (
    DistributedContext,
    all_reduce_mean,
    barrier,
    init_distributed,
    resolve_device,
    shutdown_distributed,
    wrap_model,
)
from training.logging_utils import RunLogger, sample_grid
from training.losses import (
    TERM_NAMES,
    LossTerms,
    LossWeights,
    StyleTransferLoss,
)
from training.pairs import PairConfig, perturbed_view
from training.run_state import DIVERGED_HINT, TrainingDivergedError, TrainingStateMixin
from training.setup import (
    AMP_DTYPES,
    build_loss_encoder,
    build_model,
    lr_factor,
    make_optimizer,
    trainable_parameters,
)
from training.state import (
    CHECKPOINT_DIR,
    TrainingState,
    TrainingStateError,
    checkpoint_path,
    list_checkpoints,
    load_training_state,
    save_training_state,
)

log = logging.getLogger(__name__)

# Also re-exported from here: the training-state (training.state) and schedule names.
__all__ = [
    "CHECKPOINT_DIR",
    "TrainResult",
    "Trainer",
    "TrainingDivergedError",
    "TrainingState",
    "TrainingStateError",
    "checkpoint_path",
    "list_checkpoints",
    "load_training_state",
    "lr_factor",
    "save_training_state",
    "train",
]

_PAIR_STREAM, _POSITION_STREAM = 1, 2  # generator streams (setup.INIT_STREAM is 3)


# -- the trainer --------------------------------------------------------------------------------
@dataclass
class TrainResult:
    """What a run did. ``losses``: step number (1-based) -> this process's total loss."""

    final_step: int
    losses: dict[int, float] = field(default_factory=dict)
    checkpoints: list[Path] = field(default_factory=list)
    export_path: Path | None = None
    skipped_files: int = 0
    samples_per_s: float = 0.0


class Trainer(TrainingStateMixin):
    """One process of a training run (all ranks run the same code).

    Build it, then call :meth:`train`. Tests and benchmarks may call :meth:`train_step`
    directly.
    """

    def __init__(self, config: TrainConfig, ctx: DistributedContext | None = None) -> None:
        self.config = config
        self.ctx = ctx or DistributedContext(device=resolve_device(config.device))
        self.device = self.ctx.device
        self.precision = resolve_precision(config.precision, str(self.device), training=True)
        if config.deterministic:
            torch.use_deterministic_algorithms(True, warn_only=True)
            torch.backends.cudnn.benchmark = False
            os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        elif self.device.type == "cuda":
            torch.backends.cudnn.benchmark = True

        self.dataset: TrainingSet = build_training_set(
            config.resolved_dir("content_dir") if config.content_dir else "",
            config.resolved_dir("style_dir"),
            load_size=config.load_size,
            crop_size=config.crop_size,
            video_dir=config.video_dir,
            video_frame_gap=config.video_frame_gap,
        )
        loss_encoder, self.encoder_source = build_loss_encoder(config)
        self.model = build_model(config, loss_encoder).to(self.device)
        self.criterion = StyleTransferLoss(
            loss_encoder,
            LossWeights(
                config.style_weight,
                config.local_weight,
                config.content_weight,
                config.similarity_weight,
            ),
            kind=config.attention,
            similarity_taps=config.similarity_taps,
            similarity_max_positions=config.similarity_max_positions,
        ).to(self.device)
        self.params = trainable_parameters(self.model)
        self.optimizer = make_optimizer(config, self.params)
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=self.precision == "fp16")
        self.pair_config = PairConfig(
            shift=config.pair_shift,
            scale=config.pair_scale,
            rotation_deg=config.pair_rotation_deg,
            brightness=config.pair_brightness,
            noise_std=config.pair_noise_std,
        )
        self.step = 0
        self.resumed_from: Path | None = None
        resume = self._resume_path()
        if resume is not None:
            self.load_state(resume)
        self.network = wrap_model(self.model, self.ctx)
        self._last_images: list[Tensor] | None = None

    # -- one step ---------------------------------------------------------------------------
    def _generator(self, stream: int) -> torch.Generator:
        return torch.Generator().manual_seed(
            mix_seed(self.config.seed, self.step, self.ctx.rank, stream)
        )

    def train_step(self, batch: dict[str, Tensor]) -> LossTerms:
        """One optimisation step on a collated batch; advances :attr:`step`."""
        config = self.config
        for group in self.optimizer.param_groups:
            group["lr"] = config.lr * lr_factor(config, self.step)
        content = batch["content"].to(self.device, non_blocking=True)
        style = batch["style"].to(self.device, non_blocking=True)
        pairs = config.similarity_weight > 0
        contents = content
        if pairs:
            if "content_next" in batch:
                second = batch["content_next"].to(self.device, non_blocking=True)
            else:
                second, _ = perturbed_view(content, self.pair_config, self._generator(_PAIR_STREAM))
            contents = torch.cat([content, second])
        amp = self.precision in AMP_DTYPES
        with torch.autocast(self.device.type, dtype=AMP_DTYPES.get(self.precision), enabled=amp):
            outputs = self.network(
                contents, torch.cat([style] * (contents.shape[0] // style.shape[0]))
            )
            terms = self.criterion(
                outputs,
                contents,
                style,
                pairs=pairs,
                generator=self._generator(_POSITION_STREAM),
            )
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(terms.total).backward()
        if config.grad_clip_norm is not None:
            self.scaler.unscale_(self.optimizer)
            torch.nn.utils.clip_grad_norm_(self.params, config.grad_clip_norm)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.step += 1
        b = content.shape[0]
        second_view, second_output = (contents[b:], outputs[b:]) if pairs else (content, outputs)
        self._last_images = [
            t.detach() for t in (content, second_view, style, outputs[:b], second_output)
        ]
        return terms

    # -- the loop ---------------------------------------------------------------------------
    def data_loader(self) -> DataLoader:
        contents = self.dataset.contents
        sampler = StepSampler(
            len(contents),
            len(self.dataset.styles),
            self.config.batch_size,
            seed=self.config.seed,
            start_step=self.step,
            max_steps=self.config.max_steps,
            rank=self.ctx.rank,
            world_size=self.ctx.world_size,
        )
        workers = self.config.num_workers
        return DataLoader(
            self.dataset,
            batch_size=self.config.batch_size,
            sampler=sampler,
            num_workers=workers,
            pin_memory=self.device.type == "cuda",
            prefetch_factor=4 if workers else None,
            persistent_workers=False,
        )

    def summary(self) -> dict[str, Any]:
        config, ctx = self.config, self.ctx
        contents = self.dataset.contents
        if isinstance(contents, VideoFramePairs):
            content_text = f"{len(contents)} frame pairs from {contents.clip_count} clips in {config.video_dir}"
        else:
            content_text = f"{len(contents)} images in {contents.root}"
        global_batch = config.batch_size * ctx.world_size
        weights = (
            f"style {config.style_weight:g} / local {config.local_weight:g} / content "
            f"{config.content_weight:g} / similarity {config.similarity_weight:g} "
            f"(at {', '.join(config.similarity_taps)})"
        )
        pairs = (
            "consecutive video frames"
            if isinstance(contents, VideoFramePairs)
            else "two perturbed views of each photo"
        )
        return {
            "output": config.output_dir,
            "device": f"{self.device} x {ctx.world_size} process(es), {self.precision}",
            "contents": content_text,
            "styles": f"{len(self.dataset.styles)} images in {self.dataset.styles.root}",
            "images": f"load {config.load_size}, crop {config.crop_size}",
            "batch": f"{config.batch_size} per process, {global_batch} global",
            "steps": f"{self.step} -> {config.max_steps}"
            + (f" (resumed from {self.resumed_from})" if self.resumed_from else ""),
            "epochs": f"{config.max_steps * global_batch / len(contents):.2f} over the contents",
            "model": f"video AdaAttN, {config.attention} attention, "
            f"{sum(p.numel() for p in self.params) / 1e6:.2f} M trainable parameters",
            "encoder": f"{config.encoder_family} from {self.encoder_source}",
            "init": config.init_from or "random (seeded)",
            "optimizer": f"{config.optimizer} lr {config.lr:g} ({config.lr_schedule}, warm-up "
            f"{config.warmup_steps}), clip {config.grad_clip_norm}",
            "losses": weights,
            "pairs": pairs if config.similarity_weight > 0 else "off (similarity_weight 0)",
            "checkpoints": f"every {config.checkpoint_every} steps in "
            f"{Path(config.output_dir) / CHECKPOINT_DIR}",
            "export": str(Path(config.output_dir) / config.export_name),
        }

    def train(self) -> TrainResult:
        """Run to ``max_steps``: log, checkpoint every ``checkpoint_every`` and at the end, export."""
        config, ctx = self.config, self.ctx
        result = TrainResult(final_step=self.step)
        tensorboard_dir = Path(config.output_dir) / "tensorboard" if config.tensorboard else None
        logger = RunLogger(
            enabled=ctx.is_main,
            total_steps=config.max_steps,
            start_step=self.step,
            log_every=config.log_every,
            tensorboard_dir=tensorboard_dir,
            samples_per_step=config.batch_size * ctx.world_size,
        )
        logger.summary(self.summary())
        self.network.train()
        pending: list[tuple[int, Tensor]] = []
        skipped = torch.zeros((), dtype=torch.float32)
        try:
            for batch in self.data_loader():
                terms = self.train_step(batch)
                pending.append((self.step, terms.total.detach()))
                skipped += batch["skipped"].sum().float()
                losses = None
                if self.step % config.log_every == 0 or self.step == config.max_steps:
                    reduced = all_reduce_mean(
                        torch.cat([terms.stacked(), skipped.view(1).to(self.device)]), ctx
                    ).tolist()
                    losses = dict(zip(TERM_NAMES, reduced[:-1], strict=True))
                    result.skipped_files = round(reduced[-1] * ctx.world_size)
                    result.losses.update({s: float(t) for s, t in pending})
                    pending.clear()
                    if not all(math.isfinite(v) for v in losses.values()):
                        raise TrainingDivergedError(
                            f"the loss became {losses['total']} at step {self.step}; "
                            + DIVERGED_HINT
                        )
                logger.step(
                    self.step, losses, self.optimizer.param_groups[0]["lr"], result.skipped_files
                )
                if config.sample_every and self.step % config.sample_every == 0 and ctx.is_main:
                    logger.images(self.step, sample_grid(self._last_images or []))
                if self.step % config.checkpoint_every == 0 or self.step == config.max_steps:
                    saved = self.save_state()
                    if saved is not None:
                        result.checkpoints.append(saved)
        except KeyboardInterrupt:
            # Keep the work done since the last checkpoint (single process only: other ranks
            # of a distributed run may be mid-step). Resume with resume=auto.
            logger.close()
            if not ctx.distributed and self.step > 0 and self.step % config.checkpoint_every:
                log.warning("interrupted at step %d: saving a checkpoint", self.step)
                self.save_state()
            raise
        finally:
            logger.close()
        result.losses.update({s: float(t) for s, t in pending})
        result.final_step = self.step
        result.samples_per_s = logger.last_rate
        result.export_path = self.export()
        barrier(ctx)
        return result


def train(config: TrainConfig, ctx: DistributedContext | None = None) -> TrainResult:
    """Train with ``config`` in this process (joining torchrun's process group if launched by
    it); the entry point of ``stylestream train``."""
    own_group = ctx is None
    ctx = ctx or init_distributed(config.device)
    started = time.perf_counter()
    try:
        result = Trainer(config, ctx).train()
    finally:
        if own_group:
            shutdown_distributed()
    if ctx.is_main:
        log.info(
            "trained to step %d in %.1f s; exported %s",
            result.final_step, time.perf_counter() - started, result.export_path,
        )  # fmt: skip
    return result
