"""Training the temporally stable AdaAttN (SPEC sections 5 and 6).

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
    checkpoints/step_00005000.safetensors   training state (format "stylestream-train")
    tensorboard/                            scalars and sample grids
    video.safetensors (export_name)         the inference checkpoint every command loads
"""

from __future__ import annotations

import json
import logging
import math
import os
import random
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import SafetensorError
from torch import Tensor, nn
from torch.utils.data import DataLoader

from adaattn_video.checkpoint import (
    load_checkpoint,
    read_safetensors,
    save_checkpoint,
    write_safetensors,
)
from adaattn_video.config import ModelConfig
from adaattn_video.encoder import VGGEncoder
from adaattn_video.errors import CheckpointError, StylestreamError
from adaattn_video.model import VideoAdaAttN
from training.config import TrainConfig, TrainConfigError
from training.data import StepSampler, TrainingSet, VideoFramePairs, build_training_set, mix_seed
from training.distributed import (
    DistributedContext,
    all_reduce_mean,
    barrier,
    init_distributed,
    resolve_device,
    shutdown_distributed,
    unwrap_model,
    wrap_model,
)
from training.logging_utils import RunLogger, sample_grid
from training.losses import (
    TERM_NAMES,
    LossTerms,
    LossWeights,
    StyleTransferLoss,
    load_loss_encoder,
)
from training.pairs import PairConfig, perturbed_view

log = logging.getLogger(__name__)

STATE_FORMAT = "stylestream-train"
STATE_FORMAT_VERSION = "1"
CHECKPOINT_DIR = "checkpoints"
_CHECKPOINT_NAME = re.compile(r"step_(\d+)\.safetensors")
_PAIR_STREAM, _POSITION_STREAM, _INIT_STREAM = 1, 2, 3
# Fields that may change between a run and its resumption without changing the losses.
_RESUME_FREE_FIELDS = frozenset(
    {"max_steps", "checkpoint_every", "keep_checkpoints", "log_every", "sample_every",
     "tensorboard", "resume", "num_workers", "output_dir", "export_name", "device"}
)  # fmt: skip


class TrainingStateError(CheckpointError):
    """A training checkpoint is missing, unreadable, or does not fit this run."""


class TrainingDivergedError(StylestreamError, FloatingPointError):
    """The loss or the weights became NaN or infinite."""


_DIVERGED_HINT = (
    "resume from the last checkpoint (resume=auto) with a lower lr, grad_clip_norm set, or "
    "precision fp32"
)


# -- small pure helpers -------------------------------------------------------------------------
def resolve_precision(precision: str, device: torch.device) -> str:
    """ "auto" -> "fp16" on CUDA, "fp32" on CPU; fp16 needs CUDA (its GradScaler is CUDA-only)."""
    if precision == "auto":
        return "fp16" if device.type == "cuda" else "fp32"
    if precision == "fp16" and device.type != "cuda":
        raise TrainConfigError(
            f"precision 'fp16' needs a CUDA device, got {device}; use 'bf16' or 'fp32' on CPU"
        )
    return precision


_AMP_DTYPES = {"fp16": torch.float16, "bf16": torch.bfloat16}


def lr_factor(config: TrainConfig, step: int) -> float:
    """Multiplier of ``config.lr`` for the step with 0-based index ``step``.

    Linear warm-up over ``warmup_steps``, then constant, linear or cosine decay to
    ``min_lr_ratio`` at ``max_steps``. A pure function of the step: nothing to save.
    """
    if step < config.warmup_steps:
        return (step + 1) / config.warmup_steps
    if config.lr_schedule == "constant":
        return 1.0
    span = max(1, config.max_steps - config.warmup_steps)
    progress = min(1.0, (step - config.warmup_steps) / span)
    low = config.min_lr_ratio
    if config.lr_schedule == "linear":
        return 1.0 - (1.0 - low) * progress
    return low + (1.0 - low) * 0.5 * (1.0 + math.cos(math.pi * progress))


def reset_conv_parameters(module: nn.Module, generator: torch.Generator) -> None:
    """PyTorch's default Conv2d initialisation, drawn from ``generator`` (not the global RNG)."""
    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_uniform_(m.weight, a=math.sqrt(5), generator=generator)
            if m.bias is not None:
                bound = 1.0 / math.sqrt(m.weight[0].numel())
                nn.init.uniform_(m.bias, -bound, bound, generator=generator)


def build_loss_encoder(config: TrainConfig) -> tuple[VGGEncoder, str]:
    """The frozen VGG (to relu5_1) the losses look through, and a description of its weights."""
    family, weights = config.encoder_family, config.encoder_weights
    if weights is None and family == "vgg_normalised" and not config.allow_random_encoder:
        raise TrainConfigError(
            "encoder_weights is required for the vgg_normalised family: the path to "
            "vgg_normalised.pth (`stylestream weights download` fetches it), or use "
            "encoder_family: torchvision_vgg19"
        )
    return load_loss_encoder(family, weights, allow_random=config.allow_random_encoder)


def _model_config(config: TrainConfig) -> ModelConfig:
    return ModelConfig(
        variant="video", encoder_family=config.encoder_family, attention=config.attention
    )


def build_model(config: TrainConfig, loss_encoder: VGGEncoder) -> VideoAdaAttN:
    """The model to train: fresh (f/g/h and decoder from a seeded generator) or ``init_from``;
    its frozen encoder is the loss encoder's first layers."""
    model = VideoAdaAttN(_model_config(config))
    reset_conv_parameters(
        nn.ModuleList([model.transformer, model.decoder]),
        torch.Generator().manual_seed(mix_seed(config.seed, _INIT_STREAM)),
    )
    prefix = {k: v for k, v in loss_encoder.state_dict().items() if k in model.encoder.state_dict()}
    model.encoder.load_state_dict(prefix, strict=True)
    if config.init_from is not None:
        _init_from_checkpoint(model, config)
    return model


def _init_from_checkpoint(model: VideoAdaAttN, config: TrainConfig) -> None:
    source = load_checkpoint(config.init_from)  # type: ignore[arg-type]
    if source.config.variant != "video":
        raise TrainConfigError(
            f"init_from {config.init_from}: a {source.config.variant!r} model cannot initialise "
            "the video model (give a video checkpoint)"
        )
    if source.config.encoder_family != config.encoder_family:
        raise TrainConfigError(
            f"init_from {config.init_from} was trained with the "
            f"{source.config.encoder_family} encoder, the config asks for {config.encoder_family}"
        )
    if source.config.attention != config.attention:
        raise TrainConfigError(
            f"init_from {config.init_from} uses {source.config.attention} attention, the config "
            f"asks for {config.attention}; set attention: {source.config.attention}"
        )
    ours = model.encoder.state_dict()
    theirs = source.encoder.state_dict()
    if any(not torch.equal(ours[k], theirs[k]) for k in ours):
        message = (
            f"init_from {config.init_from}: its encoder weights differ from the loss encoder's "
            f"({config.encoder_weights or 'random'}); the decoder would see other features"
        )
        if not config.allow_random_encoder:
            raise TrainConfigError(message + ": give the encoder_weights it was trained with")
        log.warning("%s (continuing: allow_random_encoder)", message)
    model.load_state_dict(source.state_dict(), strict=True)
    log.info("initialised from %s", config.init_from)


def trainable_parameters(model: nn.Module) -> list[nn.Parameter]:
    return [p for p in model.parameters() if p.requires_grad]


def make_optimizer(config: TrainConfig, params: list[nn.Parameter]) -> torch.optim.Optimizer:
    kind = torch.optim.AdamW if config.optimizer == "adamw" else torch.optim.Adam
    return kind(params, lr=config.lr, betas=config.betas, weight_decay=config.weight_decay)


# -- training checkpoints -----------------------------------------------------------------------
def checkpoint_path(output_dir: str | Path, step: int) -> Path:
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


class Trainer:
    """One process of a training run (all ranks run the same code).

    Build it, then call :meth:`train`. Tests and benchmarks may call :meth:`train_step`
    directly.
    """

    def __init__(self, config: TrainConfig, ctx: DistributedContext | None = None) -> None:
        self.config = config
        self.ctx = ctx or DistributedContext(device=resolve_device(config.device))
        self.device = self.ctx.device
        self.precision = resolve_precision(config.precision, self.device)
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

    # -- state ------------------------------------------------------------------------------
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
        changed = sorted(
            k
            for k, v in state.config.to_dict().items()
            if k not in _RESUME_FREE_FIELDS and self.config.to_dict().get(k) != v
        )
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
                + _DIVERGED_HINT
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
        amp = self.precision in _AMP_DTYPES
        with torch.autocast(self.device.type, dtype=_AMP_DTYPES.get(self.precision), enabled=amp):
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
                            + _DIVERGED_HINT
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
