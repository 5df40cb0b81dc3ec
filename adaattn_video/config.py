"""The model's configuration: everything needed to rebuild a model from its checkpoint."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from typing import Literal

EncoderFamily = Literal["vgg_normalised", "torchvision_vgg19"]
AttentionKind = Literal["cosine", "softmax"]
Variant = Literal["video", "image"]

ENCODER_FAMILIES: tuple[str, ...] = ("vgg_normalised", "torchvision_vgg19")
ATTENTION_KINDS: tuple[str, ...] = ("cosine", "softmax")
VARIANTS: tuple[str, ...] = ("video", "image")
TAPS: tuple[str, ...] = ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1")


@dataclass(frozen=True)
class ModelConfig:
    """Architecture of a style-transfer model; saved beside every checkpoint.

    Attributes:
        variant: ``"video"`` (one AdaAttN at relu3_1, the published video model) or ``"image"``
            (AdaAttN at relu3_1, relu4_1 and relu5_1 with a skip, the published image model).
        encoder_family: which frozen VGG the decoder was trained with. The two
            families are not interchangeable.
        attention: ``"cosine"`` (``relu(q.k + 1)`` attention, linear time) or ``"softmax"``
            (exact, fused).
    """

    variant: Variant = "video"
    encoder_family: EncoderFamily = "vgg_normalised"
    attention: AttentionKind = "cosine"

    def __post_init__(self) -> None:
        if self.variant not in VARIANTS:
            raise ValueError(f"variant must be one of {VARIANTS}, got {self.variant!r}")
        if self.encoder_family not in ENCODER_FAMILIES:
            raise ValueError(
                f"encoder_family must be one of {ENCODER_FAMILIES}, got {self.encoder_family!r}"
            )
        if self.attention not in ATTENTION_KINDS:
            raise ValueError(f"attention must be one of {ATTENTION_KINDS}, got {self.attention!r}")

    @property
    def deepest_tap(self) -> str:
        """The deepest encoder tap the model needs (the encoder is cut right after it)."""
        return "relu3_1" if self.variant == "video" else "relu5_1"

    @property
    def size_multiple(self) -> int:
        """Input sides must be multiples of this (1/4 scale at relu3_1, 1/16 at relu5_1)."""
        return 4 if self.variant == "video" else 16

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> ModelConfig:
        from configkit.convert import from_mapping

        try:
            data = json.loads(text)
        except json.JSONDecodeError as err:
            raise ValueError(f"model config is not JSON ({err}), got {text!r}") from err
        if not isinstance(data, dict):
            raise ValueError(f"model config must be a JSON object, got {text!r}")
        return from_mapping(cls, data, source="model config")


VIDEO_MODEL = ModelConfig(variant="video", encoder_family="vgg_normalised", attention="cosine")
IMAGE_MODEL = ModelConfig(variant="image", encoder_family="vgg_normalised", attention="softmax")
