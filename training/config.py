"""The training run's configuration: one frozen, validated dataclass, loaded from YAML.

A run is fully described by a :class:`TrainConfig`: it is written into every training
checkpoint and into the exported model's metadata, so a run can be resumed and audited.

    config = load_train_config("configs/train_video.yaml", ["lr=2e-4", "batch_size=4"])

YAML keys are the field names below; an unknown key is an error (a typo must not silently
fall back to a default). Values are checked by type and range in ``__post_init__`` with
messages of the form "expected X, got Y".
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any, Literal, get_type_hints

from adaattn_video.config import (
    ATTENTION_KINDS,
    ENCODER_FAMILIES,
    TAPS,
    AttentionKind,
    EncoderFamily,
)
from adaattn_video.errors import StylestreamError
from adaattn_video.settings import StylizerSettingError, check_device
from configkit import convert
from configkit import yaml_loader as yaml_config
from configkit.convert import (
    ConfigError,
    convert_value,
    from_mapping,
    option,
    split_optional,
    type_name,
)

Optimizer = Literal["adam", "adamw"]
Schedule = Literal["constant", "cosine", "linear"]
Precision = Literal["auto", "fp32", "bf16", "fp16"]

OPTIMIZERS: tuple[str, ...] = ("adam", "adamw")
SCHEDULES: tuple[str, ...] = ("constant", "cosine", "linear")
PRECISIONS: tuple[str, ...] = ("auto", "fp32", "bf16", "fp16")
LOSS_TAPS: tuple[str, ...] = TAPS[1:]  # relu2_1 .. relu5_1: the style-loss taps of AdaAttN
BUNDLED = "bundled"  # content_dir/style_dir value meaning the images shipped with the package


class TrainConfigError(StylestreamError, ValueError):
    """A training config file or override is malformed, has an unknown key or a bad value."""


@dataclass(frozen=True)
class TrainConfig:
    """Everything a training run needs (AdaAttN losses plus the image-similarity loss).

    Data:
        content_dir: folder of photos (any depth; jpg/png/webp/gif), or ``"bundled"``.
        style_dir: folder of paintings (any depth), or ``"bundled"``.
        video_dir: optional folder of clips, each a sub-folder of consecutive frames; when set,
            content pairs for the image-similarity loss are consecutive frames from it instead of
            two perturbed views of one photo.
        load_size: the shorter side images are resized to before cropping (reference 512).
        crop_size: side of the square random crop (reference 256); a multiple of 16.
        batch_size: samples per process and step (global batch = batch_size * processes).
        num_workers: DataLoader worker processes per training process.
        video_frame_gap: frames between the two frames of a video pair (1 = consecutive).

    Model:
        attention: "cosine" (the video model, linear-time attention) or "softmax" (for comparison).
        encoder_family: "vgg_normalised" or "torchvision_vgg19"; recorded in the export.
        encoder_weights: vgg_normalised.pth, or a torchvision vgg19 file; None for the
            torchvision family means torchvision's weights API (online or its cache).
        allow_random_encoder: with encoder_weights None, train against a RANDOM frozen encoder
            (tests and benchmarks only: the result is not a style-transfer model).
        init_from: a stylestream .safetensors checkpoint (e.g. the imported published video
            model) to fine-tune from.

    Losses (weights; 0 turns a term off):
        style_weight (10), local_weight (3), content_weight (0), similarity_weight (100).
        similarity_taps: taps the image-similarity loss compares (relu4_1 of a 256 crop = 1024
            positions); similarity_max_positions: positions sampled per image and tap beyond that.

    Pairs (two views of one photo; fractions of the crop side / degrees / [0, 1] intensities):
        pair_shift, pair_scale, pair_rotation_deg, pair_noise_std, pair_brightness.

    Optimisation:
        optimizer ("adam"/"adamw"), lr, weight_decay, betas, lr_schedule
        ("constant"/"cosine"/"linear" decay to ``min_lr_ratio * lr``), warmup_steps, max_steps,
        grad_clip_norm (None = no clipping), precision ("auto" = fp16 with a GradScaler on CUDA,
        fp32 on CPU; "bf16" works on both), device ("auto", "cpu", "cuda", "cuda:1"), seed,
        deterministic (deterministic CUDA kernels: bitwise-exact resume on GPUs too, slower;
        CPU runs are bitwise reproducible either way).

    Output:
        output_dir: checkpoints/, tensorboard/ and the exported model go here.
        checkpoint_every / keep_checkpoints (0 = keep all) / log_every / sample_every (0 = off),
        tensorboard, export_name, resume (None, "auto" = latest in output_dir, or a path).
    """

    content_dir: str = option(
        "", "folder of photos (any depth; jpg/png/webp/gif), or 'bundled'", role="input"
    )
    style_dir: str = option("", "folder of paintings (any depth), or 'bundled'", role="input")
    video_dir: str | None = option(
        None,
        "folder of clips (a sub-folder of frames each): content pairs are consecutive frames",
        role="input",
    )
    load_size: int = option(512, "shorter side images are resized to before cropping")
    crop_size: int = option(256, "side of the square random crop (a multiple of 16)")
    batch_size: int = option(
        8, "samples per process and step (global batch = batch_size x processes)"
    )
    num_workers: int = option(2, "DataLoader worker processes per training process")
    video_frame_gap: int = option(
        1, "frames between the two frames of a video pair (1 = consecutive)"
    )

    attention: AttentionKind = option("cosine", "cosine (the video model) or softmax")
    encoder_family: EncoderFamily = option(
        "vgg_normalised", "the loss encoder's VGG; recorded in the exported model"
    )
    encoder_weights: str | None = option(
        None, "vgg_normalised.pth, or a torchvision vgg19 file", role="input"
    )
    allow_random_encoder: bool = option(
        False, "train against a RANDOM encoder (tests and benchmarks only)"
    )
    init_from: str | None = option(None, "a stylestream .safetensors checkpoint to fine-tune from")

    style_weight: float = option(10.0, "weight of the global style loss (0 turns it off)")
    local_weight: float = option(3.0, "weight of the local (attention) style loss")
    content_weight: float = option(0.0, "weight of the content loss")
    similarity_weight: float = option(100.0, "weight of the image-similarity (temporal) loss")
    similarity_taps: tuple[str, ...] = option(
        ("relu4_1",), "taps the image-similarity loss compares"
    )
    similarity_max_positions: int = option(
        1024, "positions sampled per image and tap beyond this many"
    )

    pair_shift: float = option(
        0.03, "largest shift between the two views (fraction of the crop side)"
    )
    pair_scale: float = option(0.05, "largest scale change between the two views (fraction)")
    pair_rotation_deg: float = option(3.0, "largest rotation between the two views (degrees)")
    pair_noise_std: float = option(
        0.02, "noise added to the second view (std, intensities in [0, 1])"
    )
    pair_brightness: float = option(0.05, "largest brightness change of the second view")

    optimizer: Optimizer = option("adam", "adam or adamw")
    lr: float = option(1e-4, "learning rate")
    weight_decay: float = option(0.0, "weight decay")
    betas: tuple[float, float] = option((0.9, 0.999), "Adam betas")
    lr_schedule: Schedule = option(
        "constant", "constant, or cosine/linear decay to min_lr_ratio x lr"
    )
    warmup_steps: int = option(0, "linear warm-up steps")
    min_lr_ratio: float = option(0.0, "final learning rate as a fraction of lr (cosine/linear)")
    max_steps: int = option(50000, "training steps")
    grad_clip_norm: float | None = option(None, "clip the gradient norm (null: no clipping)")
    precision: Precision = option(
        "auto", "auto = fp16 + GradScaler on CUDA, fp32 elsewhere; bf16 works on CUDA and CPU"
    )
    device: str = option(
        "auto", "auto, cpu, cuda, cuda:N or mps (under torchrun: the local rank's GPU)"
    )
    seed: int = option(0, "random seed")
    deterministic: bool = option(
        False, "deterministic CUDA kernels (bitwise-exact resume on GPUs, slower)"
    )

    output_dir: str = option(
        "runs/video", "checkpoints/, tensorboard/ and the exported model go here", role="output"
    )
    checkpoint_every: int = option(5000, "steps between training checkpoints")
    keep_checkpoints: int = option(3, "training checkpoints kept (0 = all)")
    log_every: int = option(50, "steps between log lines")
    sample_every: int = option(1000, "steps between sample grids in tensorboard (0 = off)")
    tensorboard: bool = option(True, "write tensorboard logs")
    export_name: str = option("video.safetensors", "file name of the exported model in output_dir")
    resume: str | None = option(
        None, "null, auto (the latest checkpoint in output_dir) or a checkpoint path"
    )

    def __post_init__(self) -> None:
        hints = get_type_hints(type(self))
        for f in fields(self):
            _check_type(f.name, getattr(self, f.name), hints[f.name])
        if not self.content_dir and self.video_dir is None:
            raise TrainConfigError("content_dir is required (or video_dir), got an empty value")
        for name in ("style_dir", "output_dir", "export_name"):
            if not getattr(self, name):
                raise TrainConfigError(f"{name} is required, got an empty value")
        positive = ("load_size", "crop_size", "batch_size", "max_steps", "checkpoint_every")
        positive += ("log_every", "video_frame_gap", "similarity_max_positions")
        for name in positive:
            if getattr(self, name) < 1:
                raise TrainConfigError(f"{name} must be >= 1, got {getattr(self, name)}")
        for name in ("num_workers", "keep_checkpoints", "sample_every", "warmup_steps"):
            if getattr(self, name) < 0:
                raise TrainConfigError(f"{name} must be >= 0, got {getattr(self, name)}")
        if self.crop_size % 16 or self.crop_size < 32:
            raise TrainConfigError(
                f"crop_size must be a multiple of 16 and >= 32 (the loss taps reach relu5_1 at "
                f"1/16 scale), got {self.crop_size}"
            )
        if self.crop_size > self.load_size:
            raise TrainConfigError(
                f"crop_size must be <= load_size, got crop {self.crop_size} > load {self.load_size}"
            )
        weights = ("style_weight", "local_weight", "content_weight", "similarity_weight")
        for name in weights:
            if getattr(self, name) < 0:
                raise TrainConfigError(f"{name} must be >= 0, got {getattr(self, name)}")
        if not any(getattr(self, name) > 0 for name in weights):
            raise TrainConfigError("at least one loss weight must be > 0, got all zero")
        if not self.similarity_taps or any(t not in LOSS_TAPS for t in self.similarity_taps):
            raise TrainConfigError(
                f"similarity_taps must be a non-empty list from {LOSS_TAPS}, "
                f"got {list(self.similarity_taps)}"
            )
        for name in ("pair_shift", "pair_scale", "pair_noise_std", "pair_brightness"):
            value = getattr(self, name)
            if not 0.0 <= value <= 0.5:
                raise TrainConfigError(f"{name} must be in [0, 0.5], got {value}")
        if not 0.0 <= self.pair_rotation_deg <= 45.0:
            raise TrainConfigError(
                f"pair_rotation_deg must be in [0, 45], got {self.pair_rotation_deg}"
            )
        if self.lr <= 0:
            raise TrainConfigError(f"lr must be > 0, got {self.lr}")
        if self.weight_decay < 0:
            raise TrainConfigError(f"weight_decay must be >= 0, got {self.weight_decay}")
        if not all(0.0 <= b < 1.0 for b in self.betas):
            raise TrainConfigError(f"betas must both be in [0, 1), got {list(self.betas)}")
        if not 0.0 <= self.min_lr_ratio <= 1.0:
            raise TrainConfigError(f"min_lr_ratio must be in [0, 1], got {self.min_lr_ratio}")
        if self.grad_clip_norm is not None and self.grad_clip_norm <= 0:
            raise TrainConfigError(
                f"grad_clip_norm must be > 0 (or null for no clipping), got {self.grad_clip_norm}"
            )
        try:
            check_device(self.device)
        except StylizerSettingError as err:
            raise TrainConfigError(str(err)) from err
        if not self.export_name.endswith(".safetensors"):
            raise TrainConfigError(
                f"export_name must end with .safetensors, got {self.export_name!r}"
            )

    # -- conversions ------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (tuples become lists)."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any], source: str = "config") -> TrainConfig:
        """Build from a mapping of field names to (YAML- or string-typed) values.

        The one converter (:func:`configkit.convert.from_mapping`) turns strings into the
        field's type (``"1e-4"`` -> 0.0001, ``"true"`` -> True, ``"relu3_1,relu4_1"`` -> a
        tuple), so YAML files, ``--key value`` flags and ``key=value`` overrides share it.
        """
        return from_mapping(cls, data, source=source, error=TrainConfigError)

    @classmethod
    def from_json(cls, text: str) -> TrainConfig:
        return cls.from_mapping(json.loads(text), source="saved config")

    def replace(self, **changes: Any) -> TrainConfig:
        """A copy with ``changes`` (converted and validated like any other value)."""
        merged = {**asdict(self), **changes}
        return TrainConfig.from_mapping(merged, source="override")

    def resolved_dir(self, name: str) -> Path:
        """``content_dir`` / ``style_dir`` as a path; ``"bundled"`` is the packaged images."""
        value = getattr(self, name)
        if value == BUNDLED and name in ("content_dir", "style_dir"):
            from adaattn_video.assets import CONTENTS_DIR, STYLES_DIR

            return CONTENTS_DIR if name == "content_dir" else STYLES_DIR
        return Path(value).expanduser()


# -- loading ------------------------------------------------------------------------------------
def check_keys(data: Mapping[str, Any], source: str) -> None:
    """Raise TrainConfigError naming any key of ``data`` that is not a TrainConfig field."""
    convert.check_keys(TrainConfig, data, source, TrainConfigError)


def parse_overrides(overrides: Iterable[str]) -> dict[str, Any]:
    """``["lr=2e-4", "similarity_taps=[relu3_1, relu4_1]"]`` -> a mapping (values YAML-parsed
    by the one config loader)."""
    try:
        return yaml_config.parse_overrides(list(overrides))
    except ConfigError as err:
        raise TrainConfigError(str(err)) from err


def read_yaml_mapping(path: str | Path) -> dict[str, Any]:
    """The top-level mapping of a YAML config file (empty file -> {}), read by the one config
    loader (:func:`configkit.yaml_loader.load_yaml_file`)."""
    try:
        return yaml_config.load_yaml_file(path)
    except ConfigError as err:
        raise TrainConfigError(str(err)) from err


def load_train_config(path: str | Path | None = None, overrides: Iterable[str] = ()) -> TrainConfig:
    """The config of a YAML file (or the defaults), with ``key=value`` overrides applied."""
    data = read_yaml_mapping(path) if path is not None else {}
    extra = parse_overrides(overrides)
    check_keys(extra, "override")
    data.update(extra)
    return TrainConfig.from_mapping(data, source=str(path) if path else "overrides")


def _check_type(name: str, value: Any, hint: Any) -> None:
    """Reject values of the wrong type passed to the constructor directly (no conversion)."""
    optional, inner = split_optional(hint)
    if value is None and optional:
        return
    coerced = convert_value(name, value, hint, source="TrainConfig", error=TrainConfigError)
    int_for_float = inner is float and isinstance(value, int) and not isinstance(value, bool)
    if coerced != value or (type(coerced) is not type(value) and not int_for_float):
        raise TrainConfigError(
            f"TrainConfig: {name} expected {type_name(hint)}, got {value!r} "
            "(TrainConfig.from_mapping converts strings and lists)"
        )


__all__ = [
    "ATTENTION_KINDS",
    "BUNDLED",
    "ENCODER_FAMILIES",
    "LOSS_TAPS",
    "TrainConfig",
    "TrainConfigError",
    "load_train_config",
    "parse_overrides",
]
