"""Published-layout AdaAttN state dicts with random values, saved as real ``.pth`` files.

The key names and shapes are written out here from the published AdaAttN repository's networks (not derived from our model),
so a test that imports these files checks our architecture against the published layout.
Other tests may import these helpers.
"""

from __future__ import annotations

import zipfile
from collections.abc import Mapping
from pathlib import Path

import torch
from torch import Tensor

from adaattn_video.config import ModelConfig
from adaattn_video.model import StyleTransferModel, build_model

# (module index, out, in, kernel) of every conv in the 53-module normalised VGG (the published vgg_normalised.pth).
VGG_NORMALISED_CONVS: tuple[tuple[int, int, int, int], ...] = (
    (0, 3, 3, 1),
    (2, 64, 3, 3), (5, 64, 64, 3),
    (9, 128, 64, 3), (12, 128, 128, 3),
    (16, 256, 128, 3), (19, 256, 256, 3), (22, 256, 256, 3), (25, 256, 256, 3),
    (29, 512, 256, 3), (32, 512, 512, 3), (35, 512, 512, 3), (38, 512, 512, 3),
    (42, 512, 512, 3), (45, 512, 512, 3), (48, 512, 512, 3), (51, 512, 512, 3),
)  # fmt: skip

# The relu3_1 decoder: (index, out, in) of its 3x3 convs; the image model's first conv takes 512.
DECODER_CONVS: tuple[tuple[int, int, int], ...] = (
    (1, 256, 256), (4, 256, 256), (7, 256, 256), (10, 128, 256),
    (14, 128, 128), (17, 64, 128), (21, 64, 64), (24, 3, 64),
)  # fmt: skip


def _conv(
    state: dict[str, Tensor], name: str, out: int, inp: int, k: int, generator: torch.Generator
) -> None:
    # He-style scale keeps activations finite and non-trivial through the random network.
    std = (2.0 / (inp * k * k)) ** 0.5
    state[f"{name}.weight"] = torch.randn(out, inp, k, k, generator=generator) * std
    state[f"{name}.bias"] = torch.randn(out, generator=generator) * 0.01


def vgg_normalised_state(generator: torch.Generator, *, last_index: int = 52) -> dict[str, Tensor]:
    """``vgg_normalised.pth``: conv layers with module index <= ``last_index`` (52 = all 53)."""
    state: dict[str, Tensor] = {}
    for index, out, inp, k in VGG_NORMALISED_CONVS:
        if index <= last_index:
            _conv(state, str(index), out, inp, k, generator)
    return state


def adaattn_state(
    generator: torch.Generator, channels: int, key_channels: int, prefix: str = ""
) -> dict[str, Tensor]:
    """One AdaAttN's ``f``, ``g`` (key -> key) and ``h`` (value -> value) 1x1 convs."""
    state: dict[str, Tensor] = {}
    _conv(state, f"{prefix}f", key_channels, key_channels, 1, generator)
    _conv(state, f"{prefix}g", key_channels, key_channels, 1, generator)
    _conv(state, f"{prefix}h", channels, channels, 1, generator)
    return state


def decoder_state(generator: torch.Generator, prefix: str, first_in: int) -> dict[str, Tensor]:
    state: dict[str, Tensor] = {}
    for i, (index, out, inp) in enumerate(DECODER_CONVS):
        _conv(state, f"{prefix}{index}", out, first_in if i == 0 else inp, 3, generator)
    return state


def video_package(seed: int = 0, *, vgg_last_index: int = 52) -> dict[str, dict[str, Tensor]]:
    """File name -> state dict of the published video model (+ vgg_normalised.pth)."""
    generator = torch.Generator().manual_seed(seed)
    return {
        "vgg_normalised.pth": vgg_normalised_state(generator, last_index=vgg_last_index),
        "latest_net_transformer.pth": adaattn_state(generator, 256, 448),
        "latest_net_decoder.pth": decoder_state(generator, "decoder.", 256),
    }


def image_package(seed: int = 1, *, vgg_last_index: int = 52) -> dict[str, dict[str, Tensor]]:
    """File name -> state dict of the published image model (+ vgg_normalised.pth)."""
    generator = torch.Generator().manual_seed(seed)
    transformer = {
        **adaattn_state(generator, 512, 960, "attn_adain_4_1."),
        **adaattn_state(generator, 512, 1472, "attn_adain_5_1."),
    }
    _conv(transformer, "merge_conv", 512, 512, 3, generator)
    decoder: dict[str, Tensor] = {}
    _conv(decoder, "decoder_layer_1.1", 256, 512, 3, generator)
    decoder.update(decoder_state(generator, "decoder_layer_2.", 512))
    return {
        "vgg_normalised.pth": vgg_normalised_state(generator, last_index=vgg_last_index),
        "latest_net_adaattn_3.pth": adaattn_state(generator, 256, 448),
        "latest_net_transformer.pth": transformer,
        "latest_net_decoder.pth": decoder,
    }


def save_files(folder: Path, files: Mapping[str, Mapping[str, Tensor]]) -> Path:
    """``torch.save`` each state dict as ``folder/NAME``; returns ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    for name, state in files.items():
        torch.save(dict(state), folder / name)
    return folder


def save_zip(path: Path, members: Mapping[str, Mapping[str, Tensor]], tmp: Path) -> Path:
    """A zip whose members (e.g. ``"attn_adain_video/latest_net_decoder.pth"``) are real .pth
    files; ``tmp`` is a scratch directory."""
    tmp.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED) as archive:
        for member, state in members.items():
            scratch = tmp / member.replace("/", "__")
            torch.save(dict(state), scratch)
            archive.write(scratch, member)
            scratch.unlink()
    return path


def model_from_state_dicts(
    variant: str, files: Mapping[str, Mapping[str, Tensor]]
) -> StyleTransferModel:
    """The model built directly from the published state dicts with ``load_state_dict`` on each
    submodule (strict), independently of :mod:`adaattn_video.weights`."""
    if variant == "video":
        model = build_model(ModelConfig(variant="video", attention="cosine"))
        last = 17
        model.transformer.load_state_dict(files["latest_net_transformer.pth"])
        model.decoder.load_state_dict(
            {k.removeprefix("decoder."): v for k, v in files["latest_net_decoder.pth"].items()}
        )
    else:
        model = build_model(ModelConfig(variant="image", attention="softmax"))
        last = 43
        model.adaattn_3.load_state_dict(files["latest_net_adaattn_3.pth"])
        model.transformer.load_state_dict(files["latest_net_transformer.pth"])
        model.decoder.load_state_dict(files["latest_net_decoder.pth"])
    vgg = {k: v for k, v in files["vgg_normalised.pth"].items() if int(k.split(".")[0]) <= last}
    model.encoder.load_state_dict(vgg)
    return model.eval()
