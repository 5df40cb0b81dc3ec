"""Setting up a training run: precision, learning-rate schedule, the model and its optimizer.

Every random draw here comes from an explicit generator seeded from the config's ``seed``
(never the global RNG), so two runs with one config start from identical weights.
"""

from __future__ import annotations

import logging
import math

import torch
from torch import nn

from adaattn_video.checkpoint import load_checkpoint
from adaattn_video.config import ModelConfig
from adaattn_video.encoder import VGGEncoder
from adaattn_video.model import VideoAdaAttN
from training.config import TrainConfig, TrainConfigError
from training.data import mix_seed
from training.losses import load_loss_encoder

log = logging.getLogger(__name__)

INIT_STREAM = 3  # the generator stream of the initial weights (see training.data.mix_seed)
AMP_DTYPES = {"fp16": torch.float16, "bf16": torch.bfloat16}


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
        torch.Generator().manual_seed(mix_seed(config.seed, INIT_STREAM)),
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
