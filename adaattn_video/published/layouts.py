"""How each published file's keys map into our model, and the checks on one file.

===========================  =========================================  =========================
file                          file keys                                  model keys
===========================  =========================================  =========================
vgg_normalised.pth            ``N.weight`` (53-module Sequential)         ``encoder.N.weight``
video latest_net_transformer  ``f.*``, ``g.*``, ``h.*``                   ``transformer.*``
video latest_net_decoder      ``decoder.N.*``                             ``decoder.N.*``
image latest_net_adaattn_3    ``f.*``, ``g.*``, ``h.*``                   ``adaattn_3.*``
image latest_net_transformer  ``attn_adain_4_1.*``, ``attn_adain_5_1.*``,  ``transformer.*``
                              ``merge_conv.*``
image latest_net_decoder      ``decoder_layer_1.*``, ``decoder_layer_2.*``  ``decoder.*``
===========================  =========================================  =========================
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from torch import Tensor

from adaattn_video.checkpoint import check_state
from adaattn_video.config import Variant
from adaattn_video.errors import CheckpointError
from adaattn_video.published.catalog import (
    ADAATTN_3_FILE,
    DECODER_FILE,
    TRANSFORMER_FILE,
    VGG_FILE,
)

# The last module index of each VGG family (53 modules for the normalised VGG, 37 for
# torchvision's ``features``): layers past what a model needs but within these are dropped.
VGG_LAST_INDEX = {"vgg_normalised": 52, "torchvision_vgg19": 36}
_VGG_KEY = re.compile(r"(\d+)\.(weight|bias)")


@dataclass(frozen=True)
class FileLayout:
    """How one published file's keys map into the model.

    Attributes:
        name: the published file name.
        file_prefix: every key of the file starts with this ...
        model_prefix: ... which becomes this in the model's state dict.
    """

    name: str
    file_prefix: str
    model_prefix: str


LAYOUTS: dict[Variant, tuple[FileLayout, ...]] = {
    "video": (
        FileLayout(VGG_FILE, "", "encoder."),
        FileLayout(TRANSFORMER_FILE, "", "transformer."),
        FileLayout(DECODER_FILE, "decoder.", "decoder."),
    ),
    "image": (
        FileLayout(VGG_FILE, "", "encoder."),
        FileLayout(ADAATTN_3_FILE, "", "adaattn_3."),
        FileLayout(TRANSFORMER_FILE, "", "transformer."),
        FileLayout(DECODER_FILE, "", "decoder."),
    ),
}


def expected_file_keys(
    model_state: Mapping[str, Tensor], layout: FileLayout
) -> dict[str, tuple[int, ...]]:
    """File key -> shape the model needs from the file ``layout`` describes."""
    return {
        layout.file_prefix + key[len(layout.model_prefix) :]: tuple(value.shape)
        for key, value in model_state.items()
        if key.startswith(layout.model_prefix)
    }


def drop_deeper_vgg_layers(
    state: dict[str, Tensor], expected: Mapping[str, tuple[int, ...]], family: str
) -> dict[str, Tensor]:
    """Keep the VGG layers the model needs; drop deeper layers of a complete VGG file."""
    needed_last = max(int(_VGG_KEY.fullmatch(k).group(1)) for k in expected)  # type: ignore[union-attr]
    kept = {}
    for key, value in state.items():
        match = _VGG_KEY.fullmatch(key)
        if (
            key not in expected
            and match
            and needed_last < int(match.group(1)) <= VGG_LAST_INDEX[family]
        ):
            continue
        kept[key] = value
    return kept


def _vgg_depth_hint(
    state: Mapping[str, Tensor], expected: Mapping[str, tuple[int, ...]], what: str
) -> str:
    """For a VGG file cut too shallow: how deep it goes and how deep ``what`` needs."""
    if not all(_VGG_KEY.fullmatch(k) for k in expected):
        return ""
    present = [int(m.group(1)) for k in state if (m := _VGG_KEY.fullmatch(k))]
    needed = max(int(_VGG_KEY.fullmatch(k).group(1)) for k in expected)  # type: ignore[union-attr]
    return (
        f" (it has layers up to idx {max(present) if present else 'none'}; "
        f"{what} needs idx 0..{needed + 1})"
    )


def check_file_state(
    state: Mapping[str, Tensor],
    expected: Mapping[str, tuple[int, ...]],
    location: str,
    *,
    what: str,
) -> None:
    """Every key and shape of one file, with messages in the file's own key names."""
    hint = _vgg_depth_hint(state, expected, what) if set(expected) - set(state) else ""
    check_state(state, expected, location, what=what, missing_hint=hint)


def transformer_variant(state: Mapping[str, Tensor], location: str) -> Variant:
    """Which package a ``latest_net_transformer.pth`` belongs to, from its keys."""
    weight = state.get("f.weight")
    if weight is not None and tuple(weight.shape) == (448, 448, 1, 1):
        return "video"
    if any(key.startswith("attn_adain_4_1.") for key in state):
        return "image"
    raise CheckpointError(
        f"{location}: neither the video transformer (f.weight of shape (448, 448, 1, 1)) nor "
        f"the image transformer (attn_adain_4_1.*); its keys start with {sorted(state)[:3]}"
    )
